"""The vector-store layer: one suite run against both backends.

``edge`` is the embedded engine in a temporary directory, ``qdrant`` is qdrant-client's local
mode (``:memory:``). Results are checked against numpy brute force on small random data, so
both backends must be exact here (500 points stay below every index threshold).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient

from counterpoint.errors import Conflict, InvalidInput, NotFound
from counterpoint.infra.vectors import (
    CollectionSpec,
    EdgeTuning,
    EdgeVectorStore,
    QdrantVectorStore,
    VectorRecord,
    VectorStore,
    make_vector_store,
    point_id,
)
from counterpoint.schemas import Condition, Filter, MatchAny, Range
from counterpoint.settings import Settings

N, DIM = 500, 32
CATEGORIES = ["news", "blog", "paper", "wiki"]
INDEXES: dict[str, Any] = {"category": "keyword", "year": "integer", "flag": "bool", "price": "float"}

_rng = np.random.default_rng(7)
VECTORS = _rng.standard_normal((N, DIM)).astype(np.float32)
QUERIES = _rng.standard_normal((8, DIM)).astype(np.float32)
PAYLOADS = [
    {
        "category": CATEGORIES[i % 4],
        "year": 2000 + (i * 7) % 20,
        "flag": i % 3 == 0,
        "price": round(float(_rng.uniform(0, 100)), 2),
        "text": f"document {i}",
    }
    for i in range(N)
]
IDS = [f"doc-{i}" for i in range(N)]


def _records(rows: range | list[int]) -> list[VectorRecord]:
    return [VectorRecord(IDS[i], VECTORS[i].tolist(), PAYLOADS[i]) for i in rows]


def _make(kind: str, path: Path) -> VectorStore:
    if kind == "edge":
        return EdgeVectorStore(path / "vectors")
    return QdrantVectorStore(QdrantClient(":memory:"))


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    vs = _make(request.param, tmp_path)
    yield vs
    vs.close()


def _fill(store: VectorStore) -> VectorStore:
    store.create_collection(CollectionSpec("docs", DIM, "cosine", INDEXES))
    store.upsert("docs", _records(range(N)))
    return store


@pytest.fixture
def docs(store: VectorStore) -> VectorStore:
    """``store`` with collection ``docs`` holding the 500 random points (tests may change it)."""
    return _fill(store)


@pytest.fixture(scope="module", params=["edge", "qdrant"])
def shared_docs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VectorStore]:
    """Like ``docs`` but built once per backend: only for tests that do not write."""
    vs = _fill(_make(request.param, tmp_path_factory.mktemp(request.param)))
    yield vs
    vs.close()


def _brute_force(
    query: np.ndarray, mask: np.ndarray | None = None, k: int = 10
) -> tuple[list[str], np.ndarray]:
    """Exact cosine top-k ids and scores under a boolean mask."""
    x = VECTORS / np.linalg.norm(VECTORS, axis=1, keepdims=True)
    scores = x @ (query / np.linalg.norm(query))
    idx = np.arange(N) if mask is None else np.nonzero(mask)[0]
    best = idx[np.argsort(-scores[idx])[:k]]
    return [IDS[i] for i in best], scores[best]


def _mask(pred: Callable[[dict[str, Any]], bool]) -> np.ndarray:
    return np.array([pred(p) for p in PAYLOADS])


# --- collections -----------------------------------------------------------------------------


def test_backends_satisfy_the_protocol(store: VectorStore) -> None:
    assert isinstance(store, VectorStore)


def test_create_exists_delete(store: VectorStore) -> None:
    assert not store.collection_exists("docs")
    store.create_collection(CollectionSpec("docs", DIM, "cosine", {"category": "keyword"}))
    assert store.collection_exists("docs")
    assert store.count("docs") == 0
    assert store.spec("docs") == CollectionSpec("docs", DIM, "cosine", {"category": "keyword"})  # type: ignore[attr-defined]
    store.delete_collection("docs")
    assert not store.collection_exists("docs")
    store.create_collection(CollectionSpec("docs", 8))  # the name is free again
    assert store.count("docs") == 0


def test_upsert_count_and_idempotent_by_id(docs: VectorStore) -> None:
    assert docs.count("docs") == N
    changed = VectorRecord(IDS[3], VECTORS[3].tolist(), {**PAYLOADS[3], "category": "changed"})
    docs.upsert("docs", [changed, changed])
    docs.upsert("docs", [changed])
    assert docs.count("docs") == N == docs.count("docs", exact=False)  # overwrites are not counted twice
    top = docs.search("docs", VECTORS[3].tolist(), top_k=1)[0]
    assert top.id == IDS[3]
    assert top.payload["category"] == "changed"
    assert top.payload["id"] == IDS[3]


def test_existing_ids(shared_docs: VectorStore) -> None:
    asked = [IDS[0], "missing-1", IDS[42], "missing-2", IDS[499]]
    assert shared_docs.existing_ids("docs", asked) == {IDS[0], IDS[42], IDS[499]}
    assert shared_docs.existing_ids("docs", []) == set()


def test_scroll_pages_through_every_point_once(shared_docs: VectorStore) -> None:
    seen: dict[str, dict] = {}
    offset, pages = None, 0
    while True:
        page, offset = shared_docs.scroll("docs", limit=128, offset=offset)
        pages += 1
        for record in page:
            assert record.id not in seen
            seen[record.id] = record.payload
        if offset is None:
            break
    assert pages == -(-N // 128) and set(seen) == set(IDS)
    assert seen[IDS[7]]["category"] == PAYLOADS[7]["category"]
    with pytest.raises(InvalidInput):
        shared_docs.scroll("docs", limit=0)
    with pytest.raises(NotFound):
        shared_docs.scroll("missing")


def test_scroll_with_vectors_gives_the_stored_dense_vectors(shared_docs: VectorStore) -> None:
    """What a re-index that only adds BM25 vectors carries over instead of embedding again."""
    page, _ = shared_docs.scroll("docs", limit=64, with_vectors=True)
    stored = {r.id: np.asarray(r.vector) for r in page}
    assert len(stored) == 64
    for doc_id, vector in stored.items():
        given = VECTORS[IDS.index(doc_id)]
        assert np.allclose(vector / np.linalg.norm(vector), given / np.linalg.norm(given), atol=1e-5)
    plain, _ = shared_docs.scroll("docs", limit=8)
    assert all(r.vector is None for r in plain)


@pytest.mark.parametrize(
    "form",
    [
        lambda v: v.tolist(),
        lambda v: v,
        lambda v: v.astype(np.float64),
        lambda v: tuple(float(x) for x in v),
        lambda v: [np.float64(x) for x in v],
    ],
    ids=["list", "float32-array", "float64-array", "tuple", "numpy-scalars"],
)
def test_every_vector_form_is_stored_as_the_same_numbers(
    store: VectorStore, form: Callable[[np.ndarray], Any]
) -> None:
    """Vectors reach the engine in the form it reads fastest (packed float32 for the embedded one):
    lists, tuples and numpy rows of any float type store the same float32 numbers."""
    store.create_collection(CollectionSpec("forms", DIM, "dot"))
    store.upsert("forms", [VectorRecord(IDS[i], form(VECTORS[i]), {}) for i in range(4)])
    page, _ = store.scroll("forms", limit=8, with_vectors=True)
    assert {r.id: list(np.float32(r.vector)) for r in page} == {IDS[i]: list(VECTORS[i]) for i in range(4)}


def test_search_matches_brute_force(shared_docs: VectorStore) -> None:
    for query in QUERIES:
        hits = shared_docs.search("docs", query.tolist(), top_k=10)
        want_ids, want_scores = _brute_force(query)
        assert [h.id for h in hits] == want_ids
        np.testing.assert_allclose([h.score for h in hits], want_scores, atol=1e-4)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].payload["text"].startswith("document ")


FILTERS: list[tuple[str, Filter, Callable[[dict[str, Any]], bool]]] = [
    ("keyword", Filter(must=[Condition(key="category", match="paper")]), lambda p: p["category"] == "paper"),
    (
        "match-any",
        Filter(must=[Condition(key="category", match=MatchAny(any=["news", "wiki"]))]),
        lambda p: p["category"] in ("news", "wiki"),
    ),
    (
        "int-range",
        Filter(must=[Condition(key="year", range=Range(gte=2005, lt=2010))]),
        lambda p: 2005 <= p["year"] < 2010,
    ),
    ("float-range", Filter(must=[Condition(key="price", range=Range(gt=75.5))]), lambda p: p["price"] > 75.5),
    (
        "must-not",
        Filter(must_not=[Condition(key="category", match="news")]),
        lambda p: p["category"] != "news",
    ),
    (
        "should",
        Filter(
            should=[Condition(key="category", match="blog"), Condition(key="year", range=Range(lte=2002))]
        ),
        lambda p: p["category"] == "blog" or p["year"] <= 2002,
    ),
    ("bool", Filter(must=[Condition(key="flag", match=True)]), lambda p: p["flag"] is True),
    ("bool-false", Filter(must=[Condition(key="flag", match=False)]), lambda p: p["flag"] is False),
    (
        "int-any",
        Filter(must=[Condition(key="year", match=MatchAny(any=[2001, 2013]))]),
        lambda p: p["year"] in (2001, 2013),
    ),
    (
        "mixed-any",
        Filter(must=[Condition(key="flag", match=MatchAny(any=[True, "x"]))]),
        lambda p: p["flag"] is True,
    ),
    (
        "combined",
        Filter(
            must=[Condition(key="year", range=Range(gte=2003))],
            must_not=[Condition(key="category", match=MatchAny(any=["blog", "wiki"]))],
            should=[Condition(key="flag", match=True), Condition(key="price", range=Range(lt=20))],
        ),
        lambda p: (
            p["year"] >= 2003 and p["category"] not in ("blog", "wiki") and (p["flag"] or p["price"] < 20)
        ),
    ),
    ("empty", Filter(), lambda p: True),
]


@pytest.mark.parametrize("case", FILTERS, ids=[c[0] for c in FILTERS])
def test_filters_match_brute_force(
    shared_docs: VectorStore, case: tuple[str, Filter, Callable[..., bool]]
) -> None:
    _, flt, pred = case
    mask = _mask(pred)
    assert mask.sum() >= 10, "test data should leave at least top_k matches"
    for query in QUERIES[:3]:
        hits = shared_docs.search("docs", query.tolist(), top_k=10, filter=flt)
        assert [h.id for h in hits] == _brute_force(query, mask)[0]
        assert all(pred(h.payload) for h in hits)


@pytest.mark.parametrize("distance", ["euclid", "dot"])
def test_other_distances_best_first(store: VectorStore, distance: Any) -> None:
    store.create_collection(CollectionSpec("d", DIM, distance))
    store.upsert("d", _records(range(100)))
    hits = store.search("d", VECTORS[17].tolist(), top_k=5)
    assert hits[0].id == IDS[17]
    if distance == "euclid":  # Qdrant reports the distance itself: ascending
        assert hits[0].score == pytest.approx(0.0, abs=1e-3)
        assert [h.score for h in hits] == sorted(h.score for h in hits)
    else:
        expected = (VECTORS[:100] @ VECTORS[17]).argsort()[::-1][:5]
        assert [h.id for h in hits] == [IDS[i] for i in expected]


# --- errors ----------------------------------------------------------------------------------


def test_missing_collection_raises_not_found(store: VectorStore) -> None:
    calls: list[Callable[[], object]] = [
        lambda: store.delete_collection("nope"),
        lambda: store.search("nope", [0.0] * DIM, top_k=3),
        lambda: store.upsert("nope", _records([0])),
        lambda: store.count("nope"),
        lambda: store.existing_ids("nope", ["a"]),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()


def test_create_twice_raises_conflict(store: VectorStore) -> None:
    store.create_collection(CollectionSpec("docs", DIM))
    with pytest.raises(Conflict):
        store.create_collection(CollectionSpec("docs", DIM))


def test_wrong_dimension_raises_invalid_input(docs: VectorStore) -> None:
    bad = VectorRecord("x", [0.1] * (DIM - 1), {})
    with pytest.raises(InvalidInput, match=rf"expected {DIM}, got {DIM - 1}"):
        docs.upsert("docs", [*_records([0]), bad])
    with pytest.raises(InvalidInput, match=rf"expected {DIM}, got {DIM + 1}"):
        docs.search("docs", [0.1] * (DIM + 1), top_k=3)
    assert docs.count("docs") == N  # nothing of the rejected batch was written


def test_invalid_specs_are_rejected(store: VectorStore) -> None:
    for spec in [
        CollectionSpec("../escape", DIM),
        CollectionSpec("ok", 0),
        CollectionSpec("ok", DIM, "hamming"),  # type: ignore[arg-type]
        CollectionSpec("ok", DIM, "cosine", {"f": "text"}),  # type: ignore[dict-item]
    ]:
        with pytest.raises(InvalidInput):
            store.create_collection(spec)
    assert not store.collection_exists("ok")


# --- both backends agree ---------------------------------------------------------------------


def test_backends_return_the_same_top_10(tmp_path: Path) -> None:
    stores = [_make("edge", tmp_path), _make("qdrant", tmp_path)]
    for vs in stores:
        vs.create_collection(CollectionSpec("docs", DIM, "cosine", INDEXES))
        vs.upsert("docs", _records(range(N)))
    for query in QUERIES:
        for flt in (None, FILTERS[1][1], FILTERS[-2][1]):
            edge, qdrant = (vs.search("docs", query.tolist(), top_k=10, filter=flt) for vs in stores)
            assert [h.id for h in edge] == [h.id for h in qdrant]
            np.testing.assert_allclose([h.score for h in edge], [h.score for h in qdrant], atol=1e-4)
    for vs in stores:
        vs.close()


# --- edge only -------------------------------------------------------------------------------


def test_edge_persists_across_restarts(tmp_path: Path) -> None:
    spec = CollectionSpec("docs", DIM, "cosine", INDEXES)
    first = EdgeVectorStore(tmp_path)
    first.create_collection(spec)
    first.upsert("docs", _records(range(N)))
    before = first.search("docs", QUERIES[0].tolist(), top_k=10, filter=FILTERS[0][1])
    first.close()

    again = EdgeVectorStore(tmp_path)
    assert again.collection_exists("docs")
    assert again.spec("docs") == spec
    assert again.count("docs") == N
    assert again.search("docs", QUERIES[0].tolist(), top_k=10, filter=FILTERS[0][1]) == before
    again.close()


def test_edge_optimize_builds_hnsw_and_stays_searchable(tmp_path: Path) -> None:
    # Tiny thresholds so that 500 x 32-d points get an HNSW graph that searches actually use.
    vs = EdgeVectorStore(tmp_path, EdgeTuning(indexing_threshold_kb=1, full_scan_threshold_kb=1))
    vs.create_collection(CollectionSpec("docs", DIM, "cosine", INDEXES))
    vs.upsert("docs", _records(range(400)))
    assert vs.index_status("docs")["indexed_vectors"] == 0
    assert vs.search("docs", VECTORS[5].tolist(), top_k=1)[0].id == IDS[5]  # before any index

    assert vs.optimize("docs") is True  # child process on a copy, then swapped in
    status = vs.index_status("docs")
    assert status["points"] == 400
    assert status["indexed_vectors"] == 400
    assert vs.optimize("docs", in_process=True) is False  # already optimal

    vs.upsert("docs", _records(range(400, N)))  # fresh points: searchable right away
    vs.upsert("docs", _records(range(390, 410)))  # overwrites across the built and the fresh segment
    assert vs.count("docs") == N == vs.count("docs", exact=False)  # the estimate ingest replies give
    assert vs.search("docs", VECTORS[450].tolist(), top_k=1)[0].id == IDS[450]
    hits = vs.search("docs", QUERIES[0].tolist(), top_k=10)
    assert len(set(h.id for h in hits) & set(_brute_force(QUERIES[0])[0])) >= 8
    vs.close()


def test_edge_is_safe_across_threads(tmp_path: Path) -> None:
    vs = EdgeVectorStore(tmp_path)
    vs.create_collection(CollectionSpec("docs", DIM, "cosine", INDEXES))
    vs.upsert("docs", _records(range(100)))
    errors: list[BaseException] = []

    def searcher() -> None:
        try:
            for query in QUERIES:
                assert len(vs.search("docs", query.tolist(), top_k=5, filter=FILTERS[0][1])) == 5
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            for start in range(100, N, 100):
                vs.upsert("docs", _records(range(start, start + 100)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert vs.count("docs") == N
    vs.delete_collection("docs")
    with pytest.raises(NotFound):
        vs.search("docs", QUERIES[0].tolist(), top_k=1)
    vs.close()


def test_qdrant_spec_lives_in_collection_metadata() -> None:
    client = QdrantClient(":memory:")
    spec = CollectionSpec("docs", DIM, "dot", {"year": "integer"})
    QdrantVectorStore(client).create_collection(spec)
    assert QdrantVectorStore(client).spec("docs") == spec  # a fresh store: no cache
    client.close()


def test_point_ids_are_stable_uuids() -> None:
    assert point_id("doc-1") == point_id("doc-1") != point_id("doc-2")
    assert len(point_id("doc-1")) == 36
    # The same ids as uuid5 (what collections written before the fast path hold), unicode included.
    namespace = uuid.UUID("6f1f6a52-4c1e-4a59-9b7c-2f0d3f4e5a61")
    for doc_id in ("doc-1", "", "0", "ünïcødé/文书", "x" * 300):
        assert point_id(doc_id) == str(uuid.uuid5(namespace, doc_id))


# --- factory ---------------------------------------------------------------------------------


def test_factory_builds_the_configured_backend(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, vector_backend="edge", index_build_min_points=123, index_build_idle_s=2
    )
    edge = make_vector_store(settings)
    assert isinstance(edge, EdgeVectorStore)
    assert edge.root == tmp_path.resolve() / "vectors"
    assert edge.indexer is not None  # the platform builds graphs in the background
    assert (edge.indexer.policy.min_points, edge.indexer.policy.idle_s) == (123, 2.0)
    edge.close()
    with pytest.raises(ValueError, match="QDRANT_URL"):
        make_vector_store(Settings(data_dir=tmp_path, vector_backend="qdrant", qdrant_url=None))
