#!/usr/bin/env bash
# Installs the headless browser the dashboard's browser tests drive (tests/ui/test_browser.py):
# Debian/Ubuntu's `chromium` package at /usr/bin/chromium. Playwright's own browser download is
# never used. Safe to run again: does nothing when Chromium is already there.
#
#   infra/tools/install_browser.sh          # called by `make install`
#   CHROMIUM=/opt/chromium/chrome infra/tools/install_browser.sh   # accept another binary
set -euo pipefail

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no $CHROMIUM and no apt-get; install Chromium yourself (browser tests skip without it)" >&2
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_browser: not root and no password-less sudo; run: sudo apt-get install -y chromium" >&2
    exit 0
  fi
fi

echo "install_browser: installing chromium with apt-get"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x "$CHROMIUM" || { echo "install_browser: chromium installed but $CHROMIUM is missing" >&2; exit 1; }
echo "install_browser: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
