"""BM25 sparse vectors and the lexical, hybrid and MMR searches, on both vector-store backends.

``edge`` is the embedded engine in a temporary directory, ``qdrant`` qdrant-client's local mode; the
two must rank alike. BM25 scores are checked against a textbook BM25 computed here (the engines apply
IDF themselves, so this also checks that the IDF modifier is on).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from counterpoint.errors import InvalidInput
from counterpoint.infra.vectors import (
    CollectionSpec,
    EdgeTuning,
    EdgeVectorStore,
    QdrantVectorStore,
    VectorRecord,
)
from counterpoint.infra.vectors.base import Bm25Settings, Retrieval, VectorStore
from counterpoint.infra.vectors.edge_shard import shard_records
from counterpoint.infra.vectors.lexical import document_vector, query_vector
from counterpoint.schemas import Condition, Filter

DIM = 16
BM25 = Bm25Settings()
TEXTS = [
    "Vitamin D deficiency is linked to bone fractures in the elderly.",
    "Bone density improves with resistance training.",
    "The zebrafish genome was sequenced in 2013.",
    "Coffee consumption and heart disease: a cohort study.",
    "Heart failure patients benefit from exercise programs.",
    "Gene expression in zebrafish embryos under heat stress.",
]
_rng = np.random.default_rng(3)
VECTORS = _rng.standard_normal((len(TEXTS), DIM)).astype(np.float32)


def _make(kind: str, path: Path) -> VectorStore:
    return (
        EdgeVectorStore(path / "vectors") if kind == "edge" else QdrantVectorStore(QdrantClient(":memory:"))
    )


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    vs = _make(request.param, tmp_path)
    vs.create_collection(CollectionSpec("docs", DIM, lexical=BM25, payload_indexes={"topic": "keyword"}))
    topics = ["bone", "bone", "gene", "heart", "heart", "gene"]
    vs.upsert(
        "docs",
        [VectorRecord(f"d{i}", VECTORS[i], {"text": t, "topic": topics[i]}) for i, t in enumerate(TEXTS)],
    )
    yield vs
    vs.close()


def test_documents_and_queries_are_tokenised_alike() -> None:
    doc = document_vector(BM25, {"title": "Running cats", "text": "The cats were running."})
    query = query_vector(BM25, "cat RUNS")
    assert doc is not None and set(query.indices) <= set(doc.indices)  # stems and case folded alike
    assert list(query_vector(BM25, "the of and").indices) == []  # stop words only: nothing to match
    assert document_vector(BM25, {"vector_only": True}) is None


def _textbook_bm25(query: str, doc: int) -> float:
    """BM25 with the engine's fixed avg_len and Lucene's IDF, over this module's corpus."""
    terms = {i: set(document_vector(BM25, {"text": t}).indices) for i, t in enumerate(TEXTS)}  # type: ignore[union-attr]
    vec = document_vector(BM25, {"text": TEXTS[doc]})
    assert vec is not None
    tf = dict(zip(vec.indices, vec.values, strict=True))
    score = 0.0
    for term in query_vector(BM25, query).indices:
        if term in tf:
            df = sum(term in t for t in terms.values())
            score += math.log(1 + (len(TEXTS) - df + 0.5) / (df + 0.5)) * tf[term]
    return score


def test_lexical_search_is_bm25_with_the_engines_idf(store: VectorStore) -> None:
    hits = store.search("docs", None, 3, retrieval=Retrieval("lexical", "zebrafish genome"))
    assert [h.id for h in hits[:2]] == ["d2", "d5"]  # the rare word, twice in d2
    for hit in hits:
        assert hit.score == pytest.approx(_textbook_bm25("zebrafish genome", int(hit.id[1:])), rel=1e-4)


def test_backends_rank_alike(tmp_path: Path) -> None:
    stores = []
    for kind in ("edge", "qdrant"):
        vs = _make(kind, tmp_path / kind)
        vs.create_collection(CollectionSpec("docs", DIM, lexical=BM25))
        vs.upsert("docs", [VectorRecord(f"d{i}", VECTORS[i], {"text": t}) for i, t in enumerate(TEXTS)])
        stores.append(vs)
    for retrieval in (
        Retrieval("lexical", "heart disease"),
        Retrieval("hybrid", "heart disease"),
        Retrieval("hybrid", "heart disease", fusion="rrf"),
        Retrieval("hybrid", "heart disease", diversity=0.5),
    ):
        edge, qdrant = (vs.search("docs", VECTORS[3] + 0.1, 4, retrieval=retrieval) for vs in stores)
        assert [h.id for h in edge] == [h.id for h in qdrant], retrieval
        np.testing.assert_allclose([h.score for h in edge], [h.score for h in qdrant], rtol=1e-4)


def test_hybrid_fuses_both_rankings_and_reports_each_stage(store: VectorStore) -> None:
    query = VECTORS[0]  # dense: d0 first; lexical: only the heart documents match
    dense = store.search("docs", query, 6)
    lexical = store.search("docs", None, 6, retrieval=Retrieval("lexical", "heart"))
    hybrid = store.search("docs", query, 6, retrieval=Retrieval("hybrid", "heart"))
    assert {h.id for h in lexical} == {"d3", "d4"}
    by_id = {h.id: h for h in hybrid}
    assert {"d0", "d3", "d4"} <= set(by_id)
    assert by_id["d0"].stages.keys() == {"dense"}  # no word in common with the query
    assert by_id["d3"].stages["lexical"] == pytest.approx(next(h.score for h in lexical if h.id == "d3"))
    assert by_id["d0"].stages["dense"] == pytest.approx(dense[0].score)
    # the lexical weight moves the lexical matches up or down the fused ranking, 0 and 1 to either end
    only_lexical = store.search(
        "docs", query, 2, retrieval=Retrieval("hybrid", "heart", fusion="rrf", lexical_weight=1)
    )
    only_dense = store.search(
        "docs", query, 6, retrieval=Retrieval("hybrid", "heart", fusion="rrf", lexical_weight=0)
    )
    assert [h.id for h in only_lexical] == [h.id for h in lexical]
    assert [h.id for h in only_dense] == [h.id for h in dense]


def test_filters_hold_in_every_mode(store: VectorStore) -> None:
    only_heart = Filter(must=[Condition(key="topic", match="heart")])
    for retrieval in (
        Retrieval("lexical", "bone heart"),
        Retrieval("hybrid", "bone heart"),
        Retrieval("hybrid", "bone heart", diversity=0.7),
    ):
        hits = store.search("docs", VECTORS[0], 6, filter=only_heart, retrieval=retrieval)
        assert hits and {h.payload["topic"] for h in hits} == {"heart"}, retrieval


def test_mmr_keeps_near_duplicates_out_of_the_top(tmp_path: Path) -> None:
    """A collection seeded with 5 near-copies of each of 4 documents: plain search fills the top 5
    with copies of the best one, MMR brings the other documents up."""
    vs = _make("edge", tmp_path)
    vs.create_collection(CollectionSpec("dups", DIM, lexical=BM25))
    rng = np.random.default_rng(0)
    bases = rng.standard_normal((4, DIM))
    records = [
        VectorRecord(f"b{b}-{c}", bases[b] + 0.01 * rng.standard_normal(DIM), {"text": TEXTS[b], "base": b})
        for b in range(4)
        for c in range(5)
    ]
    vs.upsert("dups", records)
    query = bases[0] + 0.3 * bases[1]
    plain = vs.search("dups", query, 5)
    diverse = vs.search("dups", query, 5, retrieval=Retrieval("dense", diversity=0.6))
    assert len({h.payload["base"] for h in plain}) == 1
    assert len({h.payload["base"] for h in diverse}) >= 3
    assert diverse[0].id == plain[0].id  # the most relevant stays first
    with pytest.raises(InvalidInput, match="diversity"):
        vs.search("dups", query, 5, retrieval=Retrieval("dense", diversity=1.5))


def test_bad_input_is_refused_by_name(tmp_path: Path) -> None:
    vs = _make("edge", tmp_path)
    vs.create_collection(CollectionSpec("dense-only", DIM))
    with pytest.raises(InvalidInput, match="no lexical"):
        vs.search("dense-only", None, 3, retrieval=Retrieval("lexical", "heart"))
    vs.create_collection(CollectionSpec("both", DIM, lexical=BM25))
    with pytest.raises(InvalidInput, match="needs a query vector"):
        vs.search("both", None, 3, retrieval=Retrieval("hybrid", "heart"))
    with pytest.raises(InvalidInput, match="query text"):
        vs.search("both", VECTORS[0], 3, retrieval=Retrieval("hybrid", ""))
    with pytest.raises(InvalidInput, match="lexical_weight"):
        vs.search("both", VECTORS[0], 3, retrieval=Retrieval("hybrid", "x", lexical_weight=2))
    with pytest.raises(InvalidInput, match="bm25 b"):
        vs.create_collection(CollectionSpec("bad", DIM, lexical=Bm25Settings(b=2)))


def test_sparse_vectors_travel_with_scroll_and_backups(store: VectorStore, tmp_path: Path) -> None:
    """What a re-index (scroll) and a restore across backends (shard_records) read carries the BM25
    vectors: stored as they were, they need no text to be searched lexically."""
    page, _ = store.scroll("docs", 10, with_sparse=True)
    assert len(page) == len(TEXTS) and all(r.sparse is not None for r in page)
    store.create_collection(CollectionSpec("copy", DIM, lexical=BM25))
    store.upsert("copy", [VectorRecord(r.id, VECTORS[int(r.id[1:])], {}, r.sparse) for r in page])  # no text
    hits = store.search("copy", None, 2, retrieval=Retrieval("lexical", "zebrafish genome"))
    assert [h.id for h in hits] == ["d2", "d5"]
    if isinstance(store, EdgeVectorStore):
        store.export_snapshot("docs", tmp_path / "backup")
        records = [r for batch in shard_records(tmp_path / "backup" / "shard") for r in batch]
        assert len(records) == len(TEXTS) and all(r.sparse is not None for r in records)
        assert all(len(r.vector) == DIM for r in records)


def test_the_graph_is_counted_apart_from_the_sparse_vectors(tmp_path: Path) -> None:
    """The engine counts sparse vectors as indexed on arrival; the HNSW graph's count must not, or
    the background indexer would never build it for a lexical collection."""
    vs = EdgeVectorStore(tmp_path / "v", tuning=EdgeTuning(indexing_threshold_kb=1))
    vs.create_collection(CollectionSpec("docs", DIM, lexical=BM25))
    rng = np.random.default_rng(1)
    vs.upsert(
        "docs", [VectorRecord(f"p{i}", rng.standard_normal(DIM), {"text": f"word{i}"}) for i in range(400)]
    )
    assert vs.index_status("docs")["indexed_vectors"] == 0
    assert vs.optimize("docs", in_process=True)
    assert vs.index_status("docs")["indexed_vectors"] == 400
    hits = vs.search("docs", None, 1, retrieval=Retrieval("lexical", "word7"))
    assert [h.id for h in hits] == ["p7"]  # lexical search still finds it after the build


def test_mmr_keeps_each_modes_own_order_at_no_diversity(store: VectorStore) -> None:
    """MMR's relevance is the ranking's own score: with diversity 0 a lexical or hybrid ranking comes
    back unchanged (the engines' own MMR would have re-sorted it by the dense vector)."""
    for kind in ("lexical", "hybrid"):
        plain = store.search("docs", VECTORS[1], 5, retrieval=Retrieval(kind, "bone heart zebrafish"))  # type: ignore[arg-type]
        same = store.search(
            "docs", VECTORS[1], 5, retrieval=Retrieval(kind, "bone heart zebrafish", diversity=0)
        )  # type: ignore[arg-type]
        # the same scores in the same order (documents that tie may swap)
        assert [h.score for h in same] == pytest.approx([h.score for h in plain]), kind
        assert same[0].id == plain[0].id


def test_mmr_order_trades_relevance_for_novelty() -> None:
    from counterpoint.infra.vectors.diversity import mmr_order

    vectors = np.array([[1, 0], [0.99, 0.14], [0, 1]], dtype=np.float32)  # 0 and 1 nearly the same
    scores = [0.9, 0.8, 0.5]
    assert mmr_order(scores, vectors, 3, 0.0) == [0, 1, 2]
    assert mmr_order(scores, vectors, 3, 0.5) == [0, 2, 1]  # the copy waits behind the novel one
    assert mmr_order(scores, vectors, 2, 1.0)[0] == 0  # the most relevant always comes first
    assert mmr_order([], np.zeros((0, 2)), 3, 0.5) == []
