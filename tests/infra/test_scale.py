"""The 100k version of ``bench/bench_scale.py``: the platform builds the graph itself, and it finds the neighbours.

100,000 clustered 384-d vectors (a mixture of Gaussians, like text embeddings) go into the embedded
store in upload-sized batches with the platform's background indexer on and the store's default index
settings; the test waits for the indexer to put every point into an HNSW graph, then measures recall@10
two ways: ``check_recall`` (stored vectors as queries, what ``collections check-recall`` runs) and held-out
queries against an exact numpy search. No timings: the bench prints those.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from counterpoint.infra.vectors import CollectionSpec, EdgeVectorStore, VectorRecord
from counterpoint.infra.vectors.edge import IndexPolicy
from counterpoint.infra.vectors.recall import check_recall
from counterpoint.schemas import Condition, Filter

N, DIM, BATCH = 100_000, 384, 2_000


def _clustered(rng: np.random.Generator, centres: np.ndarray, size: int) -> np.ndarray:
    x = centres[rng.integers(0, len(centres), size)] + 0.05 * rng.standard_normal((size, DIM)).astype(
        np.float32
    )
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_100k_vectors_get_a_graph_with_high_recall(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = _clustered(rng, centres, N)
    store = EdgeVectorStore(tmp_path, auto_index=IndexPolicy(idle_s=0.5))
    try:
        store.create_collection(CollectionSpec("scale", DIM, payload_indexes={"tag": "keyword"}))
        for start in range(0, N, BATCH):
            store.upsert(
                "scale",
                [
                    VectorRecord(str(i), vectors[i], {"tag": f"t{i % 100}"})
                    for i in range(start, start + BATCH)
                ],
            )
        deadline = time.monotonic() + 900
        status = store.index_status("scale")
        while not (status["state"] == "ready" and status["indexed_vectors"] == N):
            assert time.monotonic() < deadline, f"no graph after 15 minutes: {status}"
            time.sleep(1)
            status = store.index_status("scale")
        assert status["points"] == N

        report = check_recall(store, "scale", samples=100, ladder=(64,))
        assert report.current.recall >= 0.95, report

        queries = _clustered(rng, centres, 100)
        truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        found = [{hit.id for hit in store.search("scale", q, 10)} for q in queries]
        recall = np.mean([len(f & {str(j) for j in t}) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall >= 0.95
        # A filtered search through the graph still answers within the filter.
        hits = store.search("scale", queries[0], 10, filter=Filter(must=[Condition(key="tag", match="t3")]))
        assert hits and all(hit.payload["tag"] == "t3" for hit in hits)
    finally:
        store.close()
