"""The index lifecycle: graphs built in the background after ingest, builds that never block search
or ingest, interrupted builds that leave the collection serving, per-collection index settings and
the recall check, on both backends where both apply."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from counterpoint.errors import InvalidInput, Unavailable
from counterpoint.infra.vectors import (
    CollectionSpec,
    EdgeTuning,
    EdgeVectorStore,
    QdrantVectorStore,
    VectorRecord,
)
from counterpoint.infra.vectors import edge as edge_module
from counterpoint.infra.vectors.base import IndexSettings, SearchMode
from counterpoint.infra.vectors.edge import IndexPolicy
from counterpoint.infra.vectors.edge_indexer import BackgroundIndexer
from counterpoint.infra.vectors.edge_shard import OPTIMIZE_CHILD, SHARD_DIR, WORK_DIR
from counterpoint.infra.vectors.recall import check_recall

pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact")  # qdrant-client local mode

N, DIM = 600, 16
_rng = np.random.default_rng(3)
VECTORS = _rng.standard_normal((N, DIM)).astype(np.float32)
# Tiny thresholds so that a few hundred 16-d points get a graph that searches use.
SMALL = EdgeTuning(indexing_threshold_kb=1, full_scan_threshold_kb=1)
FAST = IndexPolicy(min_points=100, idle_s=0.05, max_wait_s=0.5)
INDEX = IndexSettings(m=8, ef_construct=32, hnsw_ef=24, quantization=True, oversampling=3.0, on_disk=True)


def _records(rows: range) -> list[VectorRecord]:
    return [VectorRecord(f"doc-{i}", VECTORS[i].tolist(), {"n": i}) for i in rows]


def _wait(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _state(store: EdgeVectorStore, name: str = "docs") -> tuple[int, int, str]:
    status = store.index_status(name)
    return status["points"], status["indexed_vectors"], status["state"]


def _slow_child(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    monkeypatch.setattr(
        edge_module, "OPTIMIZE_CHILD", f"import time\ntime.sleep({seconds})\n" + OPTIMIZE_CHILD
    )


def test_graph_is_built_in_the_background_after_ingest(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, SMALL, auto_index=FAST)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", _records(range(50)))  # below min_points: searched exactly, never built
    time.sleep(0.3)
    assert store.index_status("docs") == {"points": 50, "segments": 1, "indexed_vectors": 0, "state": "ready"}
    store.upsert("docs", _records(range(50, N)))
    assert store.index_status("docs")["state"] == "indexing"  # due: unindexed points past the threshold
    # the graph is swapped in a moment before the indexer clears its "building" mark: wait for both
    _wait(lambda: _state(store) == (N, N, "ready"))
    assert store.search("docs", VECTORS[7].tolist(), top_k=1)[0].id == "doc-7"
    store.close()


def test_search_and_ingest_go_on_while_the_graph_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_child(monkeypatch, 3)
    store = EdgeVectorStore(tmp_path, SMALL)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", _records(range(500)))
    result: list[bool] = []
    build = threading.Thread(target=lambda: result.append(store.optimize("docs")))
    build.start()
    _wait(lambda: store.index_status("docs")["state"] == "indexing")
    assert store.search("docs", VECTORS[3].tolist(), top_k=1)[0].id == "doc-3"
    store.upsert("docs", _records(range(500, N)))  # not blocked by the build: journaled, replayed
    assert build.is_alive()  # both answered while the build still runs
    build.join()
    assert result == [True]
    status = store.index_status("docs")
    assert status["points"] == N and status["state"] == "ready" and status["indexed_vectors"] >= 500
    assert store.search("docs", VECTORS[550].tolist(), top_k=1)[0].id == "doc-550"
    store.close()
    again = EdgeVectorStore(tmp_path, SMALL)  # the replayed points were flushed with the copy
    assert again.count("docs") == N
    again.close()


def test_an_interrupted_build_leaves_the_collection_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EdgeVectorStore(tmp_path, SMALL)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", _records(range(500)))
    # The build process dies mid-way (as if killed), having written half a segment into its copy.
    crash = "import os, sys\nopen(os.path.join(sys.argv[1], 'junk'), 'w').write('half')\nos._exit(9)\n"
    monkeypatch.setattr(edge_module, "OPTIMIZE_CHILD", crash)
    with pytest.raises(Unavailable, match="exit 9"):
        store.optimize("docs")
    assert not (tmp_path / "docs" / WORK_DIR).exists()
    assert store.search("docs", VECTORS[9].tolist(), top_k=1)[0].id == "doc-9"
    store.upsert("docs", _records(range(500, N)))
    assert store.index_status("docs")["state"] == "ready"
    # A crash of the whole process mid-build leaves the copy behind: the next start ignores it.
    store.close()
    (tmp_path / "docs" / WORK_DIR).mkdir()
    (tmp_path / "docs" / WORK_DIR / "junk").write_text("half")
    monkeypatch.setattr(edge_module, "OPTIMIZE_CHILD", OPTIMIZE_CHILD)
    again = EdgeVectorStore(tmp_path, SMALL)
    assert again.count("docs") == N
    assert again.optimize("docs") is True
    assert again.index_status("docs")["indexed_vectors"] == N
    again.close()


def test_closing_the_store_stops_a_running_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_child(monkeypatch, 30)
    store = EdgeVectorStore(tmp_path, SMALL, auto_index=FAST)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", _records(range(N)))
    _wait(lambda: store.index_status("docs")["state"] == "indexing" and store._open["docs"].child is not None)
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 10
    again = EdgeVectorStore(tmp_path, SMALL)
    assert again.count("docs") == N and again.index_status("docs")["indexed_vectors"] == 0
    again.close()


@pytest.mark.parametrize("kind", ["edge", "qdrant"])
def test_index_settings_round_trip(kind: str, tmp_path: Path) -> None:
    spec = CollectionSpec("docs", DIM, "cosine", {}, INDEX)
    if kind == "edge":
        store: EdgeVectorStore | QdrantVectorStore = EdgeVectorStore(tmp_path)
    else:
        client = QdrantClient(":memory:")
        store = QdrantVectorStore(client)
        sent: dict[str, Any] = {}
        create = client.create_collection
        client.create_collection = lambda *a, **kw: sent.update(kw) or create(*a, **kw)  # type: ignore[method-assign]
    store.create_collection(spec)
    store.upsert("docs", _records(range(100)))
    assert store.spec("docs") == spec
    assert store.search("docs", VECTORS[4].tolist(), top_k=1)[0].id == "doc-4"
    status = store.index_status("docs")
    assert (status["points"], status["state"]) == (100, "ready")
    if kind == "edge":
        store.close()
        store = EdgeVectorStore(tmp_path)  # a restart reads them back from spec.json
        assert store.spec("docs").index == INDEX
        config = json.loads((tmp_path / "docs" / SHARD_DIR / "edge_config.json").read_text())
        assert (config["hnsw_config"]["m"], config["hnsw_config"]["ef_construct"]) == (8, 32)
        assert config["vectors"][""]["memory"] == "cold" and config["quantization_config"]["scalar"]
    else:
        assert QdrantVectorStore(client).spec("docs") == spec  # from the collection's metadata
        # Local mode keeps no HNSW config: check what a server is sent.
        assert sent["hnsw_config"] == qm.HnswConfigDiff(m=8, ef_construct=32)
        assert sent["vectors_config"].on_disk is True
        assert sent["quantization_config"].scalar.type == qm.ScalarType.INT8
    store.close()


@pytest.mark.parametrize(
    ("index", "memory"),
    [
        (IndexSettings(), "cold"),  # the default: an int8 copy in RAM, the full vectors on disk
        (IndexSettings(quantization=False), None),  # no int8 copy: searches read the full vectors
        (IndexSettings(on_disk=False), None),
        (IndexSettings(quantization=False, on_disk=True), "cold"),
        (IndexSettings(datatype="float16"), None),  # half the size: kept in RAM for rescoring
        (IndexSettings(datatype="float16", on_disk=True), "cold"),
    ],
)
def test_full_vectors_stay_on_disk_unless_searches_read_them(
    index: IndexSettings, memory: str | None, tmp_path: Path
) -> None:
    store = EdgeVectorStore(tmp_path)
    store.create_collection(CollectionSpec("docs", DIM, "cosine", {}, index))
    store.upsert("docs", _records(range(50)))
    store.optimize("docs")  # the built segment is where the placement matters
    assert store.search("docs", VECTORS[7].tolist(), top_k=1)[0].id == "doc-7"
    store.close()
    config = json.loads((tmp_path / "docs" / SHARD_DIR / "edge_config.json").read_text())
    assert config["vectors"][""].get("memory") == memory
    assert (config["payload_memory"], config["id_tracker_memory"]) == ("cached", "pinned")


def test_float16_vectors_read_back_rounded_and_search_alike(tmp_path: Path) -> None:
    """float16 storage: a stored vector reads back as its float16 rounding (not float32's exact
    numbers), and searches find the same neighbours as with float32."""
    store = EdgeVectorStore(tmp_path, SMALL)
    for name, datatype in (("f16", "float16"), ("f32", None)):
        store.create_collection(CollectionSpec(name, DIM, "dot", {}, IndexSettings(datatype=datatype)))
        store.upsert(name, _records(range(N)))
        store.optimize(name)  # the built segment stores what the datatype says
    points, _ = store.scroll("f16", limit=N, with_vectors=True)
    stored = np.array([p.vector for p in sorted(points, key=lambda p: int(p.id.split("-")[1]))])
    assert not np.array_equal(stored, VECTORS)  # rounded: the precision float16 gives up
    np.testing.assert_allclose(stored, VECTORS.astype(np.float16).astype(np.float32), rtol=1e-3, atol=1e-4)
    exact = SearchMode(exact=True)
    for query in VECTORS[:20]:
        ids = [[h.id for h in store.search(c, query.tolist(), top_k=10, mode=exact)] for c in ("f16", "f32")]
        assert len(set(ids[0]) & set(ids[1])) >= 9
    assert store.spec("f16").index.datatype == "float16"
    store.close()
    config = json.loads((tmp_path / "f16" / SHARD_DIR / "edge_config.json").read_text())
    assert config["vectors"][""]["datatype"] == "float16"


def test_a_qdrant_server_is_asked_for_float16_vectors() -> None:
    client = QdrantClient(":memory:")  # local mode stores float32 whatever it is asked: check what is sent
    sent: dict[str, Any] = {}
    create = client.create_collection
    client.create_collection = lambda *a, **kw: sent.update(kw) or create(*a, **kw)  # type: ignore[method-assign]
    store = QdrantVectorStore(client)
    store.create_collection(CollectionSpec("docs", DIM, "cosine", {}, IndexSettings(datatype="float16")))
    assert sent["vectors_config"].datatype == qm.Datatype.FLOAT16
    assert store.spec("docs").index.datatype == "float16"
    store.close()


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (IndexSettings(m=1), "out of range"),
        (IndexSettings(hnsw_ef=0), "out of range"),
        (IndexSettings(oversampling=0.5), "out of range"),
        (IndexSettings(datatype="int4"), "unknown vector datatype 'int4'"),  # type: ignore[arg-type]
    ],
)
def test_bad_index_settings_are_refused(value: IndexSettings, words: str, tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path)
    with pytest.raises(InvalidInput, match=words):
        store.create_collection(CollectionSpec("docs", DIM, "cosine", {}, value))
    assert not store.collection_exists("docs")
    store.close()


@pytest.mark.parametrize("kind", ["edge", "qdrant"])
def test_check_recall(kind: str, tmp_path: Path) -> None:
    store = (
        EdgeVectorStore(tmp_path, SMALL) if kind == "edge" else QdrantVectorStore(QdrantClient(":memory:"))
    )
    store.create_collection(CollectionSpec("docs", DIM, "cosine", {}, IndexSettings(m=4, ef_construct=8)))
    store.upsert("docs", _records(range(N)))
    if kind == "edge":
        store.optimize("docs")
        exact = store.search("docs", VECTORS[1].tolist(), top_k=10, mode=SearchMode(exact=True))
        assert exact[0].id == "doc-1"
    result = check_recall(store, "docs", samples=40, top_k=10, ladder=(4, 64, 600))
    assert result.samples == 40 and result.top_k == 10
    assert 0.0 < result.current.recall <= 1.0 and result.current.p50_ms >= 0 and result.exact_p50_ms >= 0
    assert [step.hnsw_ef for step in result.ladder] == [4, 64, 600]
    assert result.ladder[-1].recall >= 0.98 and result.suggested_hnsw_ef is not None
    assert result.ladder[0].recall <= result.ladder[-1].recall
    store.create_collection(CollectionSpec("empty", DIM))
    with pytest.raises(InvalidInput, match="no vectors"):
        check_recall(store, "empty", samples=10)
    store.close()


def test_crash_between_renames_keeps_the_live_shard(tmp_path: Path) -> None:
    store = EdgeVectorStore(tmp_path, SMALL)
    store.create_collection(CollectionSpec("docs", DIM))
    store.upsert("docs", _records(range(100)))
    store.close()
    (tmp_path / "docs" / "shard").rename(tmp_path / "docs" / "shard.old")  # as a swap left it
    again = EdgeVectorStore(tmp_path, SMALL)
    assert again.count("docs") == 100
    again.close()


# --- the indexer's thresholds, with a fake store --------------------------------------------------


class FakeStore:
    """Counts that builds do not change (a collection too small for a graph), and a log of builds."""

    def __init__(self, points: int) -> None:
        self.points, self.builds = points, []

    def counts(self, name: str) -> tuple[int, int]:
        return self.points, 0

    def build(self, name: str) -> bool:
        self.builds.append((name, self.points))
        return True


def test_a_long_ingest_gets_its_graph_after_max_wait_and_no_build_loops() -> None:
    fake = FakeStore(points=500)
    indexer = BackgroundIndexer(
        IndexPolicy(min_points=100, idle_s=60, max_wait_s=0.3), fake.counts, fake.build
    )

    def keep_writing(until: Callable[[], bool], timeout: float) -> None:  # writes never pause for idle_s
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline:
            indexer.note("docs")
            time.sleep(0.02)

    keep_writing(lambda: bool(fake.builds), timeout=10)  # built once max_wait_s passed ...
    keep_writing(lambda: False, timeout=1.5)  # ... (the indexer checks every second) and not again
    assert fake.builds == [("docs", 500)]  # for the same count
    assert indexer.indexing("docs", 500, 0) is False
    fake.points = 700  # more points: due again
    assert indexer.indexing("docs", 700, 0) is True
    _wait(lambda: fake.builds[-1] == ("docs", 700), timeout=5)
    indexer.close()


def test_small_collections_are_never_built() -> None:
    fake = FakeStore(points=99)
    indexer = BackgroundIndexer(
        IndexPolicy(min_points=100, idle_s=0.01, max_wait_s=1), fake.counts, fake.build
    )
    indexer.note("docs")
    time.sleep(0.3)
    assert fake.builds == [] and indexer.indexing("docs", 99, 0) is False
    indexer.close()


@pytest.mark.parametrize("kind", ["edge", "qdrant"])
def test_search_settings_change_in_place(kind: str, tmp_path: Path) -> None:
    """``set_search`` changes hnsw_ef / oversampling of a built collection: searches use the new ef at
    once (a tiny ef finds less than a large one on the same graph), the rest of the spec stays, and it
    outlives a restart; bad values are refused without a change."""
    make = (lambda: EdgeVectorStore(tmp_path, SMALL)) if kind == "edge" else None
    store = make() if make else QdrantVectorStore(QdrantClient(":memory:"))
    store.create_collection(
        CollectionSpec("docs", DIM, "cosine", {"n": "integer"}, IndexSettings(m=4, ef_construct=8))
    )
    store.upsert("docs", _records(range(N)))
    if kind == "edge":
        store.optimize("docs")
    spec = store.set_search("docs", hnsw_ef=600, oversampling=3.0)
    assert (spec.index.hnsw_ef, spec.index.oversampling, spec.index.m) == (600, 3.0, 4)
    assert store.spec("docs") == spec and spec.payload_indexes == {"n": "integer"}
    wide = check_recall(store, "docs", samples=40, ladder=())
    assert wide.current.hnsw_ef is None and wide.current.recall >= 0.98
    if kind == "edge":  # local-mode Qdrant searches exactly whatever the ef
        store.set_search("docs", hnsw_ef=1)
        assert check_recall(store, "docs", samples=40, ladder=()).current.recall < wide.current.recall
        assert store.spec("docs").index.oversampling == 3.0  # unset: kept
        store.close()
        store = make()
        assert store.spec("docs").index.hnsw_ef == 1  # kept in spec.json
    for bad in ({"hnsw_ef": 0}, {"oversampling": 0.5}):
        with pytest.raises(InvalidInput):
            store.set_search("docs", **bad)
    assert store.spec("docs").index.m == 4
    store.close()
