"""One real local stack for all the client suites (`counterpoint up`, as in tests/e2e, shared by the package),
serving a tiny random cross-encoder as ``tiny-ce`` too, so the rerank clients have a reranker."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import PORTS, Stack, stack_env, start
from tests.tiny_models import build_tiny_cross_encoder

RERANKER = "tiny-ce"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("clients-stack")
    env = stack_env(root / "data")
    env["COUNTERPOINT_RERANK_MODEL"] = RERANKER
    env["COUNTERPOINT_RERANK_MODEL_PATH"] = str(build_tiny_cross_encoder(root / "tiny-ce"))
    s = Stack(root / "data", env, f"http://127.0.0.1:{PORTS['GATEWAY_PORT']}")
    proc = start(s, "--no-demo")
    try:
        yield s
    finally:
        if proc.poll() is None:
            subprocess.run([sys.executable, "-m", "counterpoint", "down"], env=env, timeout=300)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
