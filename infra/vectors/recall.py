"""How good a collection's approximate search is: recall@k against exact search, and the ef to reach a target.

Stored vectors are the queries (a fair sample: point ids hash the document ids). Each is searched
exactly (every point scored: the ground truth), with the collection's own settings, and with each
``hnsw_ef`` of a ladder; recall@k is the share of the exact top k that the approximate search found.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

from counterpoint.errors import InvalidInput
from counterpoint.infra.vectors.base import SearchMode, VectorStore

EF_LADDER = (16, 32, 64, 128, 256, 512)
TARGET_RECALL = 0.98


@dataclass(frozen=True)
class RecallPoint:
    """Recall@k and median latency of one search setting (``hnsw_ef`` None: the collection's own)."""

    hnsw_ef: int | None
    recall: float
    p50_ms: float


@dataclass(frozen=True)
class RecallResult:
    samples: int
    top_k: int
    current: RecallPoint
    exact_p50_ms: float
    ladder: list[RecallPoint]
    suggested_hnsw_ef: int | None  # the smallest ef of the ladder reaching the target; None: none did
    target: float = TARGET_RECALL


def _run(
    store: VectorStore, name: str, queries: list[list[float]], top_k: int, mode: SearchMode | None
) -> tuple[list[set[str]], float]:
    """The ids each query finds, and the median latency in ms."""
    found, times = [], []
    for query in queries:
        started = time.perf_counter()
        hits = store.search(name, query, top_k, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
        found.append({hit.id for hit in hits})
    return found, round(statistics.median(times), 3)


def _recall(truth: list[set[str]], found: list[set[str]]) -> float:
    hits = sum(len(t & f) for t, f in zip(truth, found, strict=True))
    return round(hits / max(1, sum(len(t) for t in truth)), 4)


def check_recall(
    store: VectorStore,
    name: str,
    samples: int,
    top_k: int = 10,
    ladder: Sequence[int] = EF_LADDER,
    target: float = TARGET_RECALL,
    label: str | None = None,
) -> RecallResult:
    """Measure collection ``name``'s recall@``top_k`` on ``samples`` of its own vectors; ``InvalidInput``
    (naming it ``label``, default ``name``) if it holds no points."""
    queries = store.sample_vectors(name, samples)
    if not queries:
        raise InvalidInput(f"collection '{label or name}' holds no vectors to check recall with")
    truth, exact_ms = _run(store, name, queries, top_k, SearchMode(exact=True))

    def point(ef: int | None) -> RecallPoint:
        found, p50 = _run(store, name, queries, top_k, None if ef is None else SearchMode(hnsw_ef=ef))
        return RecallPoint(ef, _recall(truth, found), p50)

    steps = [point(ef) for ef in ladder]
    suggested = next((step.hnsw_ef for step in steps if step.recall >= target), None)
    return RecallResult(len(queries), top_k, point(None), exact_ms, steps, suggested, target)
