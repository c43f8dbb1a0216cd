"""Lexical, hybrid and MMR search through the gateway's HTTP API (the real app, SQLite, the embedded
engine and a tiny random model: its dense ranking is arbitrary, BM25's is not)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.services.test_gateway import DOCS, assert_error, make_collection


def search(api: TestClient, **body: object) -> dict:
    reply = api.post("/v1/collections/notes/search", json=body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_new_collections_have_lexical_vectors_unless_asked_not_to(api: TestClient) -> None:
    make_collection(api)
    info = api.get("/v1/collections/notes").json()
    assert info["lexical"] == "bm25" and info["bm25"] == {"k": 1.2, "b": 0.75, "avg_len": 256.0}
    body = {"name": "dense", "lexical": None}
    assert api.post("/v1/collections", json=body).json()["lexical"] is None
    tuned = {"name": "tuned", "bm25": {"k": 0.9, "b": 0.4}}
    assert api.post("/v1/collections", json=tuned).json()["bm25"] == {"k": 0.9, "b": 0.4, "avg_len": 256.0}


def test_lexical_search_finds_words_and_needs_no_embedding(api: TestClient) -> None:
    make_collection(api)
    found = search(api, query="helium hydrogen", mode="lexical")
    assert [h["id"] for h in found["hits"]] == ["d3"]  # only d3 has either word
    assert "embed_ms" not in found["timings"] and found["hits"][0]["score"] > 0
    stemmed = search(api, query="orbiting planet", mode="lexical")  # "orbit", "planets"
    assert [h["id"] for h in stemmed["hits"]] == ["d4"]


def test_hybrid_reports_the_score_of_each_stage(api: TestClient) -> None:
    make_collection(api)
    hits = search(api, query="dogs bark", mode="hybrid", top_k=4)["hits"]
    assert hits[0]["id"] == "d2"  # first in BM25 and, the text given whole, close in the dense ranking
    assert set(hits[0]["stage_scores"]) == {"dense", "lexical"}
    others = [h for h in hits if h["id"] != "d2"]
    assert all(set(h["stage_scores"]) == {"dense"} for h in others)  # no word in common
    rrf = search(api, query="dogs bark", mode="hybrid", fusion="rrf", lexical_weight=0.7, top_k=4)["hits"]
    assert rrf[0]["id"] == "d2"
    pets = {"must": [{"key": "kind", "match": "space"}]}
    filtered = search(api, query="dogs bark stars", mode="hybrid", filter=pets)["hits"]
    assert {h["id"] for h in filtered} == {"d3", "d4"}


def test_mmr_with_no_diversity_keeps_the_relevance_order(api: TestClient) -> None:
    """(Fewer near-duplicates with diversity: tests/infra/test_lexical.py, on a seeded collection.)"""
    make_collection(api)
    plain = search(api, query="cats", top_k=4)["hits"]
    diverse = search(api, query="cats", top_k=4, mmr=0.0)["hits"]
    assert [h["id"] for h in diverse] == [h["id"] for h in plain]
    assert [h["score"] for h in diverse] == pytest.approx([h["score"] for h in plain], abs=1e-5)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"query": "x", "mode": "sparse"}, ("mode", "dense", "lexical", "hybrid")),
        ({"query": "x", "mmr": 1.5}, ("mmr",)),
        ({"query": "x", "mmr": -0.1}, ("mmr",)),
        ({"vector": [0.1] * 32, "mode": "lexical"}, ("lexical", "text 'query'")),
        ({"query": "x", "mode": "hybrid", "fusion": "dbsf", "lexical_weight": 0.7}, ("lexical_weight",)),
        ({"query": "x", "mode": "hybrid", "lexical_weight": 0.7}, ("lexical_weight", "dbsf")),
        ({"query": "x", "mode": "hybrid", "fusion": "max"}, ("fusion",)),
        ({"query": "x", "mode": "hybrid", "candidates": 0}, ("candidates",)),
    ],
)
def test_bad_search_options_are_named(api: TestClient, body: dict, words: tuple[str, ...]) -> None:
    make_collection(api)
    assert_error(api.post("/v1/collections/notes/search", json=body), 422, "invalid_request", *words)


def test_lexical_search_of_a_dense_only_collection_is_refused(api: TestClient) -> None:
    assert api.post("/v1/collections", json={"name": "notes", "lexical": None}).status_code == 201
    assert api.post("/v1/collections/notes/documents", json={"documents": DOCS}).status_code == 200
    for mode in ("lexical", "hybrid"):
        reply = api.post("/v1/collections/notes/search", json={"query": "cats", "mode": mode})
        assert_error(reply, 422, "invalid_request", "no lexical", "bm25")
    assert search(api, query="cats")["hits"]  # dense search is unaffected
