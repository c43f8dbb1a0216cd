"""Starts the real local platform (`counterpoint up`) on spare ports in a temporary data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from counterpoint.client import Client
from counterpoint.infra.processes import listening

PORTS = {"GATEWAY_PORT": 18000, "MLFLOW_PORT": 15000, "RAY_DASHBOARD_PORT": 18265, "UI_PORT": 18501}
# Every stack gets a fresh data dir, but the converted SmolLM2 copy (~30 s to convert) is shared
# with `make up`'s data dir: the conversion is atomic, so concurrent stacks may share it.
DECODE_CACHE = Path(__file__).resolve().parents[2] / ".counterpoint" / "models" / "smollm2-135m-instruct"
EXPORT_CACHE = Path(__file__).resolve().parents[2] / ".counterpoint" / "models" / "exported"
"""The default model's int8 export (``embed_backend=auto``), made by the first stack and kept for all."""


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]
    url: str

    @property
    def api_key(self) -> str:
        """The local admin key `counterpoint up` wrote (auth is on, as for a user)."""
        return (self.data_dir / "admin.key").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, timeout: float = 120.0) -> Client:
        """An SDK client of this stack, with its admin key."""
        return Client(self.url, api_key=self.api_key, timeout=timeout)

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the real `counterpoint` CLI against this stack."""
        result = subprocess.run(
            [sys.executable, "-m", "counterpoint", *args],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"counterpoint {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result


def stack_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNTERPOINT_")}
    env.update({f"COUNTERPOINT_{k}": str(v) for k, v in PORTS.items()})
    env.update(
        COUNTERPOINT_DATA_DIR=str(data_dir),
        COUNTERPOINT_MAX_SEQ_LENGTH="128",
        COUNTERPOINT_DECODE_CACHE_DIR=str(DECODE_CACHE),
        COUNTERPOINT_EXPORT_CACHE_DIR=str(EXPORT_CACHE),
        HF_HUB_OFFLINE="1",
        RAY_USAGE_STATS_ENABLED="0",
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def start(stack: Stack, *extra: str, timeout: float = 240) -> subprocess.Popen[str]:
    """Launch `counterpoint up` and wait until its health check says every part is ok."""
    log = open(stack.data_dir.parent / "up.log", "a")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "counterpoint", "up", "--no-ui", *extra],
        env=stack.env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"`counterpoint up` exited early:\n{(stack.data_dir.parent / 'up.log').read_text()}"
            )
        try:
            if httpx.get(f"{stack.url}/healthz", timeout=3).json().get("status") == "ok":
                return proc
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    proc.kill()
    raise AssertionError(
        f"stack not healthy in {timeout}s:\n{(stack.data_dir.parent / 'up.log').read_text()}"
    )


def port_open(port: int) -> bool:
    return listening("127.0.0.1", port)


def stop(stack: Stack, proc: subprocess.Popen[str]) -> None:
    """`counterpoint down` must stop every part: no server is left listening afterwards."""
    stack.cli("down", timeout=180)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(port_open(p) for p in PORTS.values()):
        time.sleep(0.5)
    assert not [name for name, p in PORTS.items() if port_open(p)], "parts still running after `down`"


@contextmanager
def running_stack(root: Path, **env: str) -> Iterator[Stack]:
    """`counterpoint up --no-demo` with its data under ``root`` and ``env`` added; down at the end."""
    data_dir = root / "data"
    s = Stack(data_dir, {**stack_env(data_dir), **env}, f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}")
    proc = start(s, "--no-demo")
    s.proc = proc  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        if proc.poll() is None:
            subprocess.run([sys.executable, "-m", "counterpoint", "down"], env=s.env, timeout=300)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
