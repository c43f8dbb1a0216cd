"""The rerank endpoint and two-stage search, against a tiny random cross-encoder scored in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from counterpoint.models.embedder import TextEmbedder
from counterpoint.models.reranker import TextReranker
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.rerank.backends import LocalReranker
from counterpoint.settings import Settings
from tests.services.in_process import in_process_core
from tests.settings_factory import unit_settings

DOCS = [
    "Lighthouses guide ships along dangerous coasts at night.",
    "Bread rises because yeast produces carbon dioxide.",
    "Contrastive learning pulls positive pairs together.",
    "A lighthouse keeper tends the lamp and the lens.",
    "Sourdough uses wild yeast and lactic bacteria.",
]


@pytest.fixture()
def rerank_api(
    tmp_path: Path, tiny_embedder: TextEmbedder, tiny_reranker: TextReranker
) -> Iterator[TestClient]:
    settings = unit_settings(tmp_path, max_rerank_documents=20, rerank_max_length=64, rerank_top_k=5)
    reranker = LocalReranker("tiny-ce", tiny_reranker)
    with (
        in_process_core(settings, LocalEmbedder("tiny", tiny_embedder), reranker) as core,
        TestClient(create_app(core), raise_server_exceptions=False) as client,
    ):
        yield client


def test_rerank_scores_match_in_process_scoring(rerank_api: TestClient, tiny_reranker: TextReranker) -> None:
    query = "who keeps the lighthouse lamp?"
    reply = rerank_api.post("/v1/rerank", json={"query": query, "documents": DOCS, "return_documents": True})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    expected = tiny_reranker.score(query, DOCS).scores
    assert [r["index"] for r in body["results"]] == list(np.argsort(-expected, kind="stable"))
    for result in body["results"]:
        assert result["relevance_score"] == pytest.approx(float(expected[result["index"]]), abs=1e-5)
        assert result["document"]["text"] == DOCS[result["index"]]
    assert body["model"] == "tiny-ce" and body["usage"]["total_tokens"] > 0 and body["truncated"] == 0
    tei = rerank_api.post("/v1/rerank", json={"query": query, "texts": DOCS, "top_n": 2}).json()
    assert [r["index"] for r in tei["results"]] == [r["index"] for r in body["results"][:2]]
    assert tei["results"][0]["document"] is None
    cards = {m["id"]: m["kind"] for m in rerank_api.get("/v1/models").json()["data"]}
    assert cards == {"tiny": "embedding", "tiny-ce": "reranker"}
    assert rerank_api.get("/healthz").json()["components"]["rerank"]["status"] == "ok"


def test_cohere_v2_and_tei_routes_score_the_same(rerank_api: TestClient) -> None:
    query = "who keeps the lighthouse lamp?"
    v1 = rerank_api.post("/v1/rerank", json={"query": query, "documents": DOCS}).json()
    v2 = rerank_api.post("/v2/rerank", json={"model": "tiny-ce", "query": query, "documents": DOCS})
    assert v2.status_code == 200 and v2.json()["results"] == v1["results"]
    tei = rerank_api.post("/rerank", json={"query": query, "texts": DOCS, "return_text": True})
    assert tei.status_code == 200, tei.text
    ranks = tei.json()  # TEI answers a bare list, best first
    assert [(r["index"], r["score"]) for r in ranks] == [
        (r["index"], r["relevance_score"]) for r in v1["results"]
    ]
    assert all(r["text"] == DOCS[r["index"]] for r in ranks)
    assert "text" not in rerank_api.post("/rerank", json={"query": query, "texts": DOCS}).json()[0]
    long = {"query": "lighthouse", "texts": ["lighthouse " * 200, "short"]}
    refused = rerank_api.post("/rerank", json=long)  # TEI's default truncate=false: too long is refused
    assert refused.status_code == 413 and "truncate=true" in refused.json()["error"]["message"]
    assert rerank_api.post("/rerank", json={**long, "truncate": True}).status_code == 200
    raw = rerank_api.post("/rerank", json={"query": query, "texts": DOCS, "raw_scores": True})
    assert raw.status_code == 422 and "raw_scores" in raw.json()["error"]["message"]
    chunks = rerank_api.post("/v1/rerank", json={"query": query, "documents": DOCS, "max_chunks_per_doc": 2})
    assert chunks.status_code == 422 and "max_chunks_per_doc" in chunks.json()["error"]["message"]


def test_long_pairs_are_truncated_and_said_so(rerank_api: TestClient) -> None:
    long = "lighthouse " * 200
    body = rerank_api.post(
        "/v1/rerank", json={"query": "lighthouse", "documents": [long, "short one"]}
    ).json()
    flags = {r["index"]: r["truncated"] for r in body["results"]}
    assert flags == {0: True, 1: False} and body["truncated"] == 1
    assert "longer than 64 tokens" in body["warnings"][0]
    huge_query = rerank_api.post("/v1/rerank", json={"query": "why " * 300, "documents": ["a", "b"]}).json()
    assert huge_query["truncated"] == 2  # the query alone is over the limit: every pair is cut, and said so


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"query": "q", "documents": []}, 422, "at least one document"),
        ({"query": "q"}, 422, "exactly one of"),
        ({"query": "q", "documents": ["a"], "texts": ["b"]}, 422, "exactly one of"),
        ({"query": " ", "documents": ["a"]}, 422, "query must not be empty"),
        ({"query": "q", "documents": ["a", " "]}, 422, "document 1 is empty"),
        ({"query": "q", "documents": ["d"] * 21}, 413, "max_rerank_documents"),
        ({"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n"),
        ({"query": "q", "documents": ["a"], "model": "nope"}, 404, "nope"),
    ],
)
def test_bad_rerank_requests(rerank_api: TestClient, body: dict, status: int, words: str) -> None:
    reply = rerank_api.post("/v1/rerank", json=body)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]["message"]


def test_two_stage_search_reorders_the_candidates(
    rerank_api: TestClient, tiny_reranker: TextReranker
) -> None:
    rerank_api.post("/v1/collections", json={"name": "notes"})
    docs = [{"id": f"n{i}", "text": text} for i, text in enumerate(DOCS)]
    assert rerank_api.post("/v1/collections/notes/documents", json={"documents": docs}).status_code == 200
    query = {"query": "lighthouse lamp", "top_k": 3}
    plain = rerank_api.post("/v1/collections/notes/search", json={**query, "top_k": 5}).json()
    reranked = rerank_api.post("/v1/collections/notes/search", json={**query, "rerank": True}).json()
    assert set(plain["timings"]) == {"embed_ms", "search_ms"}
    assert set(reranked["timings"]) == {"embed_ms", "search_ms", "rerank_ms"}
    assert reranked["reranked_by"] == "tiny-ce" and len(reranked["hits"]) == 3
    first = [h["id"] for h in plain["hits"]]  # rerank_top_k=5: all five candidates are rescored
    scores = tiny_reranker.score("lighthouse lamp", [DOCS[int(i[1:])] for i in first]).scores
    expected = [first[i] for i in np.argsort(-scores, kind="stable")][:3]
    assert [h["id"] for h in reranked["hits"]] == expected
    for hit in reranked["hits"]:
        assert first[hit["first_stage_rank"] - 1] == hit["id"]
        assert hit["first_stage_score"] == pytest.approx(
            plain["hits"][hit["first_stage_rank"] - 1]["score"], abs=1e-5
        )
    too_many = rerank_api.post(
        "/v1/collections/notes/search", json={**query, "rerank": True, "rerank_top_k": 50}
    )
    assert too_many.status_code == 413 and "max_rerank_documents" in too_many.json()["error"]["message"]
    by_vector = rerank_api.post("/v1/collections/notes/search", json={"vector": [0.1] * 32, "rerank": True})
    assert by_vector.status_code == 422 and "text 'query'" in by_vector.json()["error"]["message"]


def test_two_stage_search_fuses_the_first_stage_score_when_asked(
    rerank_api: TestClient, tiny_reranker: TextReranker
) -> None:
    from counterpoint.fusion import fuse_scores

    rerank_api.post("/v1/collections", json={"name": "fused"})
    docs = [{"id": f"n{i}", "text": text} for i, text in enumerate(DOCS)]
    rerank_api.post("/v1/collections/fused/documents", json={"documents": docs})
    query = {"query": "lighthouse lamp", "top_k": 5, "rerank": True}
    plain = rerank_api.post("/v1/collections/fused/search", json={**query, "rerank": False}).json()
    first = [h["id"] for h in plain["hits"]]
    ce = tiny_reranker.score("lighthouse lamp", [DOCS[int(i[1:])] for i in first]).scores
    for weight in (0.3, 1.0):
        reply = rerank_api.post("/v1/collections/fused/search", json={**query, "rerank_fusion": weight})
        assert reply.status_code == 200, reply.text
        fused = fuse_scores([h["score"] for h in plain["hits"]], ce, weight)
        assert {h["id"]: h["score"] for h in reply.json()["hits"]} == pytest.approx(
            dict(zip(first, fused.tolist(), strict=True)), abs=1e-4
        )
    # weight 1 keeps the first stage's order
    assert [h["id"] for h in reply.json()["hits"]] == first
    bad = rerank_api.post("/v1/collections/fused/search", json={**query, "rerank_fusion": 1.5})
    assert bad.status_code == 422 and "rerank_fusion" in bad.text


def test_without_a_reranker_rerank_is_a_clear_503(api: TestClient) -> None:
    reply = api.post("/v1/rerank", json={"query": "q", "documents": ["a"]})
    assert reply.status_code == 503 and "COUNTERPOINT_RERANK_MODEL" in reply.json()["error"]["message"]
    api.post("/v1/collections", json={"name": "c"})
    search = api.post("/v1/collections/c/search", json={"query": "q", "rerank": True})
    assert search.status_code == 503


def test_rerank_replica_waits_for_a_reranker_that_is_not_registered_yet(
    tmp_path: Path, tracking: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop registers its reranker after the platform started: the replica must stay up (503s)
    and pick the model up once it exists, instead of failing the whole Serve application."""
    import asyncio

    from counterpoint.errors import Unavailable
    from counterpoint.services.rerank import deployment

    settings = Settings(
        data_dir=tmp_path / "d",
        mlflow_tracking_uri=str(tracking["uri"]),
        rerank_model="models:/tiny-reg@later",
    )
    replica = deployment.RerankDeployment.func_or_class(settings.export())
    assert asyncio.run(replica.models()) == []
    with pytest.raises(Unavailable, match="not available yet"):
        asyncio.run(replica.rerank("q", ["d"]))
    # the alias appears (here: pointing at a bi-encoder directory, which loads as a cross-encoder)
    from counterpoint.infra.tracking import client, set_alias

    set_alias("tiny-reg", "later", 1, str(tracking["uri"]))
    try:
        monkeypatch.setattr(deployment, "RETRY_S", 0.0)
        cards = asyncio.run(replica.models())
        assert [c.id for c in cards] == ["models:/tiny-reg/1"] and cards[0].kind == "reranker"
    finally:  # the registry fixture is shared by the session: other files count its aliases
        client(str(tracking["uri"])).delete_registered_model_alias("tiny-reg", "later")
