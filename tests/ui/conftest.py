"""One real platform for the dashboard tests: `counterpoint up` with the UI, on ports of its own.

It reuses the end-to-end helpers (`Stack`, `stack_env`, `start`) with different ports, so these
tests can run beside `tests/e2e`. The stack lives for the whole `tests/ui` package (AppTest and
browser tests share it) and is seeded with one small collection, ``papers``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from counterpoint.client import Client
from counterpoint.settings import get_settings
from tests.e2e.conftest import Stack, port_open, stack_env, start

PORTS = {"GATEWAY_PORT": 18600, "MLFLOW_PORT": 15600, "RAY_DASHBOARD_PORT": 18665, "UI_PORT": 18601}
REPO = Path(__file__).resolve().parents[2]
APP = REPO / "ui" / "app.py"
ARTIFACTS = REPO / "test-artifacts"

# Ray's job agent listens on a fixed port (52365) that `ray.init` cannot change: when another Ray
# cluster on this machine holds it, the gateway records a submitted job as failed with this message.
RAY_AGENT_BUSY = "No available agent to submit job"

COLLECTION = "papers"
DOCS = [
    {"id": "simcse", "title": "SimCSE", "text": "Simple contrastive learning of sentence embeddings with dropout as augmentation.",
     "metadata": {"year": 2021, "kind": "method"}},
    {"id": "sbert", "title": "Sentence-BERT", "text": "Sentence embeddings using siamese BERT networks for semantic similarity.",
     "metadata": {"year": 2019, "kind": "method"}},
    {"id": "align", "title": "Alignment and uniformity", "text": "Understanding contrastive representation learning through alignment and uniformity on the hypersphere.",
     "metadata": {"year": 2020, "kind": "analysis"}},
    {"id": "vitd", "title": "Vitamin D and bones", "text": "Vitamin D deficiency is associated with low bone mineral density in older adults.",
     "metadata": {"year": 2015, "kind": "study"}},
    {"id": "bananas", "title": "Banana ripening", "text": "Ethylene gas controls the ripening of bananas during storage.",
     "metadata": {"year": 2012, "kind": "study"}},
    {"id": "gte", "title": "GTE", "text": "General text embeddings trained with multi-stage contrastive learning on web-scale pairs.",
     "metadata": {"year": 2023, "kind": "method"}},
]  # fmt: skip


@dataclass
class UIStack:
    stack: Stack
    ui_url: str
    mlflow_url: str

    @property
    def url(self) -> str:
        return self.stack.url

    @functools.cached_property
    def sdk(self) -> Client:
        return self.stack.client(timeout=120)

    def client(self) -> Client:
        """The SDK client of the stack (one, closed when the stack stops)."""
        return self.sdk


def _wait_ui(url: str, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("`counterpoint up` exited before the dashboard answered")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=3).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the dashboard at {url} did not answer in {timeout}s")


def _stop(stack: Stack, proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        subprocess.run(
            [sys.executable, "-m", "counterpoint", "down"], env=stack.env, timeout=300, check=False
        )
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(port_open(p) for p in PORTS.values()):
        time.sleep(0.5)
    _kill_leftovers(stack.data_dir)


def _kill_leftovers(data_dir: Path) -> None:
    """Stop processes of this stack that outlived `counterpoint down` (found by their data dir).

    `down` ends with SIGKILL when the launcher is slow to stop, which can orphan its children
    (MLflow, Ray's dashboard agent holding port 52365); only processes whose environment names
    this test's own temporary data directory are touched.
    """
    marker = f"COUNTERPOINT_DATA_DIR={data_dir}".encode()
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        return
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="package")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIStack]:
    """The platform with its dashboard, seeded with the ``papers`` collection."""
    busy = [name for name, port in PORTS.items() if port_open(port)]
    if busy:
        pytest.fail(f"ports of the UI test stack are taken: {busy}", pytrace=False)
    root = tmp_path_factory.mktemp("ui-stack")
    data_dir = root / "data"
    env = stack_env(data_dir)
    env.update({f"COUNTERPOINT_{k}": str(v) for k, v in PORTS.items()})
    from tests.tiny_models import build_tiny_cross_encoder

    env["COUNTERPOINT_RERANK_MODEL"] = str(build_tiny_cross_encoder(root / "reranker"))
    env["COUNTERPOINT_RERANK_NUM_CPUS"] = "0"  # a tiny model: leave the CPUs to the other replicas
    stack = Stack(data_dir, env, f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}")
    proc = start(stack, "--no-demo", "--ui")  # `start` passes --no-ui first; the later --ui wins
    try:
        ui_url = f"http://127.0.0.1:{PORTS['UI_PORT']}"
        _wait_ui(ui_url, proc)
        ui = UIStack(stack, ui_url, f"http://127.0.0.1:{PORTS['MLFLOW_PORT']}")
        ui.client().create_collection(COLLECTION, payload_indexes={"year": "integer", "kind": "keyword"})
        ui.client().ingest(COLLECTION, DOCS)
        yield ui
        ui.client().close()
    finally:
        _stop(stack, proc)


@pytest.fixture(scope="package")
def ui_env(ui_stack: UIStack) -> Iterator[UIStack]:
    """Point this process's settings at the test stack, for `AppTest` (which runs the app in-process)."""
    ours = {k: v for k, v in ui_stack.stack.env.items() if k.startswith("COUNTERPOINT_")}
    saved = {k: os.environ.get(k) for k in {*ours, *(k for k in os.environ if k.startswith("COUNTERPOINT_"))}}
    for key in saved:
        os.environ.pop(key, None)
    os.environ.update(ours)
    get_settings.cache_clear()
    try:
        yield ui_stack
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
