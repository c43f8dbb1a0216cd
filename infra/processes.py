"""Process bookkeeping of the local stack: free ports, Ray's agent port, the ``up`` pid file, liveness,
and waiting for an HTTP endpoint. Used by :mod:`counterpoint.infra.launcher`; imports the counterpoint
settings only (and Ray, lazily).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from counterpoint.settings import Settings


def listening(host: str, port: int) -> bool:
    """Whether a program accepts TCP connections on ``host:port`` (a port only in TIME_WAIT does not)."""
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def ray_agent_port(port: int) -> Iterator[None]:
    """Start the local Ray head with its dashboard agent (which runs submitted jobs) on ``port``.

    ``ray.init`` has no argument for it and Ray's default, 52365, is fixed: a second Ray on the
    machine (another stack, a training script, a test run next to `make up`) would take it and this
    stack's job submissions would fail with "No available agent". Ray builds its node parameters
    from ``ray._private.parameter.RayParams`` at call time, so a subclass with another default is
    enough; it is put back right after.

    This patches a private Ray API, which is why pyproject pins ``ray==2.60.0`` exactly: Ray's public
    way is ``ray start --head --dashboard-agent-listen-port`` (a separate process, as a multi-node
    cluster is started: tests/e2e/test_multinode.py), and ``ray.init`` has no such option.
    ``tests/infra/test_launcher.py`` fails on a Ray whose ``RayParams`` lost the argument.
    """
    from ray._private import parameter

    original = parameter.RayParams

    class _RayParams(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs.setdefault("dashboard_agent_listen_port", port)
            super().__init__(*args, **kwargs)

    parameter.RayParams = _RayParams  # type: ignore[misc]
    try:
        yield
    finally:
        parameter.RayParams = original  # type: ignore[misc]


def pid_file(settings: Settings) -> Path:
    """Where a running ``counterpoint up`` writes its pid, for this data directory."""
    return settings.resolved_data_dir / "run" / "up.pid"


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited process not yet reaped by its parent (a zombie) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def running_pid(settings: Settings) -> int | None:
    """PID of a live `counterpoint up` for this data directory, if any."""
    path = pid_file(settings)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if is_alive(pid) else None


def wait_http(url: str, timeout: float, *, ok: tuple[int, ...] = (200,)) -> bool:
    """Poll ``url`` until it answers with a status in ``ok`` or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code in ok:
                return True
        time.sleep(0.5)
    return False
