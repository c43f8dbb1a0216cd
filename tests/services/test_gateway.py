"""The gateway's HTTP contract, on the real app with SQLite, the embedded Qdrant engine and a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from counterpoint.models.embedder import TextEmbedder
from counterpoint.schemas.embeddings import decode_embedding
from counterpoint.services.gateway.core import GatewayCore
from tests.services.in_process import in_process_sdk

DOCS = [
    {"id": f"d{i}", "title": title, "text": text, "metadata": {"kind": kind, "year": year}}
    for i, (title, text, kind, year) in enumerate(
        [
            ("Cats", "Cats purr when they are content.", "pet", 2001),
            ("Dogs", "Dogs bark at the mail carrier.", "pet", 2010),
            ("Stars", "Stars fuse hydrogen into helium.", "space", 2015),
            ("Moons", "Moons orbit planets in the solar system.", "space", 2020),
        ],
        start=1,
    )
]


def assert_error(reply, status: int, kind: str, *words: str) -> dict:  # type: ignore[no-untyped-def]
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error"]["type"] == kind
    for word in words:
        assert word in body["error"]["message"], body["error"]["message"]
    return body


def make_collection(api: TestClient, name: str = "notes") -> None:
    reply = api.post(
        "/v1/collections", json={"name": name, "payload_indexes": {"kind": "keyword", "year": "integer"}}
    )
    assert reply.status_code == 201, reply.text
    reply = api.post(f"/v1/collections/{name}/documents", json={"documents": DOCS})
    assert reply.status_code == 200, reply.text


# --- health, models, embeddings -------------------------------------------------------------


def test_health_reports_each_part(api: TestClient) -> None:
    body = api.get("/healthz").json()
    assert body["status"] == "ok"
    assert set(body["components"]) == {"database", "embed", "vectors"}


def test_models_lists_the_served_model(api: TestClient, tiny_embedder: TextEmbedder) -> None:
    data = api.get("/v1/models").json()["data"]
    assert [(m["id"], m["dimensions"]) for m in data] == [("tiny", tiny_embedder.dimensions)]
    assert api.get("/v1/models/tiny").json() == data[0]  # OpenAI's models.retrieve
    missing = api.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and "gpt-4" in missing.json()["error"]["message"]
    assert "tiny" in missing.json()["error"]["message"]  # what is served instead


def test_embeddings_match_in_process_model(api: TestClient, tiny_embedder: TextEmbedder) -> None:
    texts = ["a short one", "a considerably longer sentence about contrastive learning", "mid length"]
    reply = api.post("/v1/embeddings", json={"input": texts, "model": "tiny"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    got = np.array([item["embedding"] for item in body["data"]])
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    np.testing.assert_allclose(got, tiny_embedder.embed(texts).vectors, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert body["usage"]["total_tokens"] == sum(tiny_embedder.count_tokens(texts))


def test_embeddings_single_string_dimensions_and_base64(api: TestClient) -> None:
    full = api.post("/v1/embeddings", json={"input": "hello"}).json()["data"][0]["embedding"]
    short = api.post("/v1/embeddings", json={"input": "hello", "dimensions": 8}).json()["data"][0][
        "embedding"
    ]
    expected = np.array(full[:8]) / np.linalg.norm(full[:8])
    np.testing.assert_allclose(short, expected, atol=1e-5)
    encoded = api.post("/v1/embeddings", json={"input": "hello", "encoding_format": "base64"}).json()
    decoded = decode_embedding(encoded["data"][0]["embedding"])
    np.testing.assert_allclose(decoded, full, atol=1e-6)


def test_float_answers_read_back_as_the_exact_float32_vectors_the_sdk_gets(
    core: GatewayCore, api: TestClient
) -> None:
    """JSON floats come in float32's shortest form, base64 holds the float32 bytes: both are the same
    vectors, and the SDK (which asks for base64) hands back those numbers as floats."""
    texts = ["a lighthouse", "the bread rises", "x"]
    answer = api.post("/v1/embeddings", json={"input": texts})
    floats = answer.json()
    digits = json.loads(answer.text, parse_float=str)["data"][0]["embedding"]
    assert max(len(d.lstrip("-")) for d in digits) <= 14, "float32's shortest form, not float64's 17 digits"
    packed = api.post("/v1/embeddings", json={"input": texts, "encoding_format": "base64"}).json()
    assert floats.keys() == {"object", "data", "model", "usage"} and floats["object"] == "list"
    assert floats["data"][0].keys() == {"object", "index", "embedding"}
    exact = np.stack([decode_embedding(d["embedding"]) for d in packed["data"]])
    np.testing.assert_array_equal(np.array([d["embedding"] for d in floats["data"]], dtype="<f4"), exact)
    with in_process_sdk(core) as sdk:
        ours, matrix = sdk.embed(texts), sdk.embed_array(texts)
    assert all(isinstance(d.embedding, list) for d in ours.data)
    np.testing.assert_array_equal(np.array([d.embedding for d in ours.data], dtype="<f4"), exact)
    assert matrix.dtype == np.float32 and matrix.shape == exact.shape
    np.testing.assert_array_equal(matrix, exact)
    assert ours.usage.total_tokens == floats["usage"]["total_tokens"]


@pytest.mark.parametrize(
    ("body", "status", "kind", "words"),
    [
        ({"input": []}, 422, "invalid_request", ("at least one",)),
        ({"input": ["ok", ""]}, 422, "invalid_request", ("input[1]", "empty")),
        ({"input": ["ok", 3]}, 422, "invalid_request", ("input",)),
        ({"input": [101, 2023, 102]}, 422, "invalid_request", ("input", "token ids", "text")),
        ({"input": [[101, 2023], [102]]}, 422, "invalid_request", ("token ids",)),
        ({"input": ["x"] * 9}, 413, "limit_exceeded", ("limit is 8",)),
        ({"input": "x", "model": "nope"}, 404, "not_found", ("nope",)),
        ({"input": "x", "dimensions": 4096}, 422, "invalid_request", ("dimensions",)),
        ({"inputs": "typo"}, 422, "invalid_request", ("input",)),
    ],
)
def test_embeddings_bad_input(
    api: TestClient, body: dict, status: int, kind: str, words: tuple[str, ...]
) -> None:
    assert_error(api.post("/v1/embeddings", json=body), status, kind, *words)


def test_malformed_json_is_a_clear_4xx(api: TestClient) -> None:
    reply = api.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(reply, 422, "invalid_request")


def test_unknown_route_is_json_404(api: TestClient) -> None:
    assert_error(api.get("/v1/nothing-here"), 404, "not_found")


# --- collections ----------------------------------------------------------------------------


def test_collection_lifecycle(api: TestClient, tiny_embedder: TextEmbedder) -> None:
    created = api.post("/v1/collections", json={"name": "papers", "payload_indexes": {"year": "integer"}})
    assert created.status_code == 201
    info = created.json()
    assert (info["model"], info["dimensions"], info["count"]) == ("tiny", tiny_embedder.dimensions, 0)
    assert_error(api.post("/v1/collections", json={"name": "papers"}), 409, "conflict", "papers")
    assert [c["name"] for c in api.get("/v1/collections").json()["collections"]] == ["papers"]
    assert api.delete("/v1/collections/papers").status_code == 200
    assert_error(api.get("/v1/collections/papers"), 404, "not_found", "papers")
    assert_error(api.delete("/v1/collections/papers"), 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name!"},
        {"name": ""},
        {"name": "ok", "distance": "manhattan"},
        {"name": "ok", "model": "ghost"},
        {"name": "ok", "index": {"m": 1}},
        {"name": "ok", "index": {"hnsw_ef": 0}},
        {"name": "ok", "index": {"unknown": 3}},
        {"name": "ok", "index": {"datatype": "int4"}},
    ],
)
def test_collection_create_bad_input(api: TestClient, body: dict) -> None:
    reply = api.post("/v1/collections", json=body)
    assert reply.status_code in (404, 422), reply.text
    assert "message" in reply.json()["error"]
    assert api.get("/v1/collections").json()["collections"] == []


def test_index_settings_and_status_round_trip(api: TestClient) -> None:
    index = {
        "m": 8,
        "ef_construct": 64,
        "hnsw_ef": 48,
        "quantization": True,
        "oversampling": 3.0,
        "on_disk": False,
        "datatype": "float16",
    }
    created = api.post("/v1/collections", json={"name": "tuned", "index": index})
    assert created.status_code == 201, created.text
    assert created.json()["index"] == index
    api.post("/v1/collections/tuned/documents", json={"documents": DOCS})
    info = api.get("/v1/collections/tuned").json()
    assert info["index"] == index
    assert (info["count"], info["index_status"], info["indexed_points"]) == (4, "ready", 0)
    default = api.post("/v1/collections", json={"name": "plain"}).json()
    assert default["index"] == dict.fromkeys(index) and default["index_status"] == "ready"


def test_check_recall(api: TestClient) -> None:
    make_collection(api)
    reply = api.post("/v1/collections/notes/check-recall", json={"samples": 3, "top_k": 2})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["collection"], body["samples"], body["top_k"], body["points"]) == ("notes", 3, 2, 4)
    assert body["recall"] == 1.0  # a tiny collection is searched exactly
    assert body["suggested_hnsw_ef"] == body["ladder"][0]["hnsw_ef"]
    assert all(step["recall"] == 1.0 and step["p50_ms"] >= 0 for step in body["ladder"])
    assert api.post("/v1/collections/notes/check-recall", json={}).json()["samples"] == 4  # all it holds


@pytest.mark.parametrize(
    ("name", "body", "status", "kind"),
    [
        ("notes", {"samples": 0}, 422, "invalid_request"),
        ("notes", {"top_k": 1000}, 422, "invalid_request"),
        ("notes", {"sample": 3}, 422, "invalid_request"),
        ("ghost", {}, 404, "not_found"),
        ("empty", {}, 422, "invalid_request"),
    ],
)
def test_check_recall_bad_request(api: TestClient, name: str, body: dict, status: int, kind: str) -> None:
    make_collection(api)
    api.post("/v1/collections", json={"name": "empty"})
    reply = api.post(f"/v1/collections/{name}/check-recall", json=body)
    assert reply.status_code == status, reply.text
    assert (
        reply.json()["error"]["type"] == kind and name in reply.json()["error"]["message"] or name == "notes"
    )


def test_search_settings_change_in_place(api: TestClient) -> None:
    make_collection(api)
    reply = api.patch("/v1/collections/notes/index", json={"hnsw_ef": 48})
    assert reply.status_code == 200, reply.text
    assert reply.json()["index"]["hnsw_ef"] == 48 and reply.json()["index"]["oversampling"] is None
    reply = api.patch("/v1/collections/notes/index", json={"oversampling": 3})
    assert reply.json()["index"] | {} == {**reply.json()["index"], "hnsw_ef": 48, "oversampling": 3.0}
    assert api.get("/v1/collections/notes").json()["index"]["hnsw_ef"] == 48
    assert api.post("/v1/collections/notes/check-recall", json={"samples": 2}).json()["hnsw_ef"] == 48
    hits = api.post("/v1/collections/notes/search", json={"query": "cats", "top_k": 2}).json()["hits"]
    assert len(hits) == 2


@pytest.mark.parametrize(
    ("name", "body", "status", "words"),
    [
        ("notes", {}, 422, ("hnsw_ef",)),
        ("notes", {"hnsw_ef": 0}, 422, ("hnsw_ef",)),
        ("notes", {"oversampling": 0.5}, 422, ("oversampling",)),
        ("notes", {"m": 32}, 422, ("m",)),  # build settings need a re-created collection
        ("ghost", {"hnsw_ef": 32}, 404, ("ghost",)),
    ],
)
def test_search_settings_bad_request(
    api: TestClient, name: str, body: dict, status: int, words: tuple[str, ...]
) -> None:
    make_collection(api)
    reply = api.patch(f"/v1/collections/{name}/index", json=body)
    assert reply.status_code == status, reply.text
    assert all(word in reply.json()["error"]["message"] for word in words)
    assert api.get("/v1/collections/notes").json()["index"]["hnsw_ef"] is None


# --- ingest ---------------------------------------------------------------------------------


def test_ingest_is_idempotent_by_id(api: TestClient) -> None:
    make_collection(api)
    again = api.post("/v1/collections/notes/documents", json={"documents": DOCS[:2]})
    assert again.json()["count"] == 4
    skipped = api.post(
        "/v1/collections/notes/documents", json={"documents": DOCS, "skip_existing": True}
    ).json()
    assert (skipped["indexed"], skipped["skipped"], skipped["count"]) == (0, 4, 4)


def test_ingest_jsonl_body_and_multipart_upload(api: TestClient) -> None:
    api.post(
        "/v1/collections", json={"name": "notes", "payload_indexes": {"kind": "keyword", "year": "integer"}}
    )
    lines = "\n".join(json.dumps(d) for d in DOCS[:2]).encode()
    raw = api.post(
        "/v1/collections/notes/documents", content=lines, headers={"content-type": "application/x-ndjson"}
    )
    assert raw.json()["indexed"] == 2, raw.text
    upload = "\n".join(json.dumps(d) for d in DOCS[2:]).encode()
    multi = api.post(
        "/v1/collections/notes/documents", files={"file": ("docs.jsonl", upload, "application/x-ndjson")}
    )
    assert multi.json()["count"] == 4, multi.text


def test_failed_ingest_leaves_collection_unchanged(api: TestClient) -> None:
    make_collection(api)
    bad_jsonl = b'{"id": "n1", "text": "fine"}\n{"id": "n2", "text": \n'
    reply = api.post(
        "/v1/collections/notes/documents", content=bad_jsonl, headers={"content-type": "application/x-ndjson"}
    )
    assert_error(reply, 422, "invalid_request", "line 2")
    wrong_type = [{"id": "n3", "text": "fine"}, {"id": "n4", "text": "typed", "metadata": {"year": "recent"}}]
    assert_error(
        api.post("/v1/collections/notes/documents", json={"documents": wrong_type}),
        422,
        "invalid_request",
        "year",
    )
    empty_text = [{"id": "n5", "text": "fine"}, {"id": "n6", "text": "  "}]
    assert_error(
        api.post("/v1/collections/notes/documents", json={"documents": empty_text}), 422, "invalid_request"
    )
    too_many = [{"id": f"m{i}", "text": "t"} for i in range(51)]
    assert_error(
        api.post("/v1/collections/notes/documents", json={"documents": too_many}), 413, "limit_exceeded", "50"
    )
    assert api.get("/v1/collections/notes").json()["count"] == 4
    assert_error(
        api.post("/v1/collections/ghost/documents", json={"documents": DOCS}), 404, "not_found", "ghost"
    )


# --- search ---------------------------------------------------------------------------------


def test_search_by_text_finds_the_exact_document(api: TestClient) -> None:
    make_collection(api)
    for doc in DOCS:
        hits = api.post(
            "/v1/collections/notes/search", json={"query": f"{doc['title']} {doc['text']}", "top_k": 4}
        ).json()["hits"]
        assert hits[0]["id"] == doc["id"]
        assert hits[0]["text"] == doc["text"] and hits[0]["metadata"]["kind"] == doc["metadata"]["kind"]
        assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_search_by_vector_and_filters(api: TestClient, tiny_embedder: TextEmbedder) -> None:
    make_collection(api)
    vector = tiny_embedder.embed(["Stars Stars fuse hydrogen into helium."]).vectors[0].tolist()
    hits = api.post("/v1/collections/notes/search", json={"vector": vector, "top_k": 1}).json()["hits"]
    assert hits[0]["id"] == "d3"
    pets = {"must": [{"key": "kind", "match": "pet"}]}
    found = api.post("/v1/collections/notes/search", json={"query": "stars", "filter": pets}).json()["hits"]
    assert {h["id"] for h in found} == {"d1", "d2"}
    recent = {
        "must": [{"key": "year", "range": {"gte": 2010}}],
        "must_not": [{"key": "kind", "match": "space"}],
    }
    found = api.post("/v1/collections/notes/search", json={"query": "anything", "filter": recent}).json()[
        "hits"
    ]
    assert [h["id"] for h in found] == ["d2"]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (
            {"query": "x", "filter": {"must": [{"key": "colour", "match": "red"}]}},
            422,
            ("colour", "kind", "year"),
        ),
        ({"vector": [0.1, 0.2]}, 422, ("2 dimensions",)),
        ({"query": "x", "top_k": 101}, 413, ("top_k",)),
        ({"query": "x", "vector": [0.1]}, 422, ("exactly one",)),
        ({"query": "   "}, 422, ("empty",)),
        ({"query": "x", "filter": {"must": [{"key": "year", "range": {}}]}}, 422, ("range",)),
    ],
)
def test_search_bad_input(api: TestClient, body: dict, status: int, words: tuple[str, ...]) -> None:
    make_collection(api)
    reply = api.post("/v1/collections/notes/search", json=body)
    assert reply.status_code == status, reply.text
    for word in words:
        assert word in reply.json()["error"]["message"]


def test_openapi_documents_every_route(api: TestClient) -> None:
    schema = api.get("/openapi.json").json()
    assert {
        "/healthz",
        "/v1/models",
        "/v1/embeddings",
        "/v1/collections",
        "/v1/collections/{name}/search",
        "/v1/collections/{name}/check-recall",
    } <= set(schema["paths"])
    assert "IngestRequest" in schema["components"]["schemas"]
    assert "Document" in schema["components"]["schemas"]
