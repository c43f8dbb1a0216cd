"""One real local stack for all the client suites (`counterpoint up`, as in tests/e2e, shared by the package),
serving a tiny random cross-encoder as ``tiny-ce`` too, so the rerank clients have a reranker."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Stack, running_stack
from tests.tiny_models import build_tiny_cross_encoder

RERANKER = "tiny-ce"

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")  # Haystack's usage telemetry: off in tests


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("clients-stack")
    reranker = build_tiny_cross_encoder(root / "tiny-ce")
    with running_stack(
        root, COUNTERPOINT_RERANK_MODEL=RERANKER, COUNTERPOINT_RERANK_MODEL_PATH=str(reranker)
    ) as s:
        yield s
