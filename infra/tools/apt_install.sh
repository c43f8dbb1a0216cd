#!/usr/bin/env bash
# Installs a Debian/Ubuntu package the tests need when its binary is missing: Chromium for the
# dashboard's browser tests (tests/ui), redis-server for the shared rate limits (tests/services).
# Playwright's own browser download is never used. Safe to run again: does nothing when the binary
# is there; without apt-get or root it says what to run and exits 0 (those tests then skip).
#
#   infra/tools/apt_install.sh /usr/bin/chromium chromium          # both called by `make install`
#   infra/tools/apt_install.sh /usr/bin/redis-server redis-server
set -euo pipefail

BINARY="$1"
PACKAGE="$2"

if [ -x "$BINARY" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt_install: no $BINARY and no apt-get; install $PACKAGE yourself (the tests that need it skip)" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "apt_install: not root and no password-less sudo; run: sudo apt-get install -y $PACKAGE" >&2
    exit 0
  fi
fi

echo "apt_install: installing $PACKAGE with apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$PACKAGE" >/dev/null
test -x "$BINARY" || { echo "apt_install: $PACKAGE installed but $BINARY is missing" >&2; exit 1; }
echo "apt_install: $("$BINARY" --version 2>/dev/null | head -1 || echo "$BINARY")"
