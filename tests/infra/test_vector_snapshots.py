"""Vector-store snapshots (what backups are made of): export, import elsewhere, same search results.

The embedded engine always runs. A Qdrant server's native snapshots need a server: set
COUNTERPOINT_TEST_QDRANT_URL (e.g. http://127.0.0.1:6333) to run them; qdrant-client's local mode has
no snapshots.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from counterpoint.errors import Conflict, InvalidInput, NotFound
from counterpoint.infra.vectors import CollectionSpec, EdgeVectorStore, QdrantVectorStore, VectorRecord
from counterpoint.infra.vectors.base import Snapshots
from counterpoint.infra.vectors.edge import shard_records
from counterpoint.schemas import Filter

DIM = 16
_rng = np.random.default_rng(3)
VECTORS = _rng.standard_normal((120, DIM)).astype(np.float32)
QUERIES = _rng.standard_normal((5, DIM)).astype(np.float32)
RECORDS = [
    VectorRecord(f"doc-{i}", VECTORS[i].tolist(), {"year": 2000 + i % 10, "text": f"t{i}"})
    for i in range(120)
]
SPEC = CollectionSpec("docs", DIM, "cosine", {"year": "integer"})


def _results(store: Snapshots, name: str) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in store.search(name, q.tolist(), 10)] for q in QUERIES]  # type: ignore[attr-defined]


def test_edge_snapshot_imports_into_another_store(tmp_path: Path) -> None:
    source = EdgeVectorStore(tmp_path / "a")
    target = EdgeVectorStore(tmp_path / "b")
    try:
        source.create_collection(SPEC)
        source.upsert("docs", RECORDS)
        assert source.export_snapshot("docs", tmp_path / "snap") == 120
        assert {r.id for page in shard_records(tmp_path / "snap" / "shard") for r in page} == {
            r.id for r in RECORDS
        }
        target.import_snapshot(CollectionSpec("copy", DIM, "cosine", {"year": "integer"}), tmp_path / "snap")
        assert target.count("copy") == 120 and _results(target, "copy") == _results(source, "docs")
        filtered = {"must": [{"key": "year", "range": {"gte": 2005}}]}
        flt = Filter.model_validate(filtered)
        assert [h.id for h in target.search("copy", QUERIES[0].tolist(), 5, flt)] == [
            h.id for h in source.search("docs", QUERIES[0].tolist(), 5, flt)
        ]
        target.close()  # reopened from disk: the imported collection is a normal one
        assert _results(target, "copy") == _results(source, "docs")
        source.export_snapshot("docs", tmp_path / "snap2")
        with pytest.raises(Conflict):
            target.import_snapshot(CollectionSpec("copy", DIM), tmp_path / "snap2")
    finally:
        source.close()
        target.close()


def test_edge_import_refuses_a_mismatched_or_missing_shard(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path / "a")
    try:
        store.create_collection(SPEC)
        store.upsert("docs", RECORDS)
        store.export_snapshot("docs", tmp_path / "snap")
        with pytest.raises(InvalidInput, match="does not load.*vector size"):
            store.import_snapshot(CollectionSpec("wrong", DIM * 2), tmp_path / "snap")
        assert not store.collection_exists("wrong") and not (tmp_path / "a" / "wrong").exists()
        with pytest.raises(InvalidInput, match="no qdrant-edge shard"):
            store.import_snapshot(CollectionSpec("empty", DIM), tmp_path / "nothing")
        with pytest.raises(NotFound):
            store.export_snapshot("ghost", tmp_path / "ghost")
    finally:
        store.close()


@pytest.mark.skipif(
    not os.environ.get("COUNTERPOINT_TEST_QDRANT_URL"), reason="needs COUNTERPOINT_TEST_QDRANT_URL"
)
def test_qdrant_server_snapshot_roundtrip(tmp_path: Path) -> None:
    from qdrant_client import QdrantClient

    url = os.environ["COUNTERPOINT_TEST_QDRANT_URL"]
    store = QdrantVectorStore(QdrantClient(url=url), url=url)
    name, copy = f"snap-{uuid.uuid4().hex[:8]}", f"copy-{uuid.uuid4().hex[:8]}"
    try:
        store.create_collection(CollectionSpec(name, DIM, "cosine", {"year": "integer"}))
        store.upsert(name, RECORDS)
        (tmp_path / "snap").mkdir()
        assert store.export_snapshot(name, tmp_path / "snap") == 120
        store.import_snapshot(CollectionSpec(copy, DIM, "cosine", {"year": "integer"}), tmp_path / "snap")
        assert store.count(copy) == 120 and _results(store, copy) == _results(store, name)
        assert store.spec(copy).name == copy
    finally:
        for each in (name, copy):
            if store.collection_exists(each):
                store.delete_collection(each)
        store.close()


def test_edge_snapshots_taken_during_upserts_hold_whole_batches(tmp_path: Path) -> None:
    """A snapshot waits for the upsert in progress: every copy holds a whole number of batches."""
    store = EdgeVectorStore(tmp_path / "a")
    store.create_collection(SPEC)
    batches = [RECORDS[i : i + 10] for i in range(0, 120, 10)]
    writer = threading.Thread(target=lambda: [store.upsert("docs", batch) for batch in batches])
    try:
        writer.start()
        counts = []
        for n in range(3):
            counts.append(store.export_snapshot("docs", tmp_path / f"snap{n}"))
            store.import_snapshot(
                CollectionSpec(f"copy{n}", DIM, "cosine", {"year": "integer"}), tmp_path / f"snap{n}"
            )
            assert store.count(f"copy{n}") == counts[-1]
        writer.join()
        assert all(count % 10 == 0 for count in counts), counts
        assert store.count("docs") == 120
    finally:
        writer.join()
        store.close()
