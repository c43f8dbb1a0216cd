"""``POST /v1/collections/{name}/vectors`` on the real gateway app (SQLite, embedded Qdrant, tiny 32-d model):
precomputed vectors are stored as sent and found by themselves; every bad batch is a 4xx naming the
problem and leaves the collection as it was."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from counterpoint.errors import InvalidInput
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder, registry_loader
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.jobs import JobService
from counterpoint.services.gateway.reindex import document_of
from counterpoint.settings import Settings
from tests.fakes import NoRay
from tests.services.conftest import MODEL
from tests.services.in_process import in_process_core
from tests.services.test_gateway import assert_error
from tests.services.test_reindex import wait_job
from tests.settings_factory import SMALL_LIMITS, unit_settings

DIMS = 32  # the tiny model's
URL = "/v1/collections/vecs/vectors"


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return unit_settings(tmp_path, **SMALL_LIMITS, max_vectors_per_upload=20)


def b64(matrix: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(matrix, dtype="<f4").tobytes()).decode()


def random_vectors(n: int, seed: int = 0, dims: int = DIMS) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dims)).astype(np.float32)


def make(api: TestClient, name: str = "vecs") -> None:
    body = {"name": name, "payload_indexes": {"kind": "keyword", "year": "integer"}}
    assert api.post("/v1/collections", json=body).status_code == 201


def count(api: TestClient, name: str = "vecs") -> int:
    return int(api.get(f"/v1/collections/{name}").json()["count"])


def top_hit(api: TestClient, vector: np.ndarray, **extra: object) -> dict:
    reply = api.post("/v1/collections/vecs/search", json={"vector": vector.tolist(), "top_k": 1, **extra})
    assert reply.status_code == 200, reply.text
    return reply.json()["hits"][0]


def test_base64_upload_is_found_by_its_own_vectors_with_payloads(api: TestClient) -> None:
    make(api)
    matrix = random_vectors(12)
    payloads = [
        {
            "text": f"text {i}",
            "title": f"T{i}",
            "metadata": {"kind": "even" if i % 2 == 0 else "odd", "year": 2000 + i},
        }
        for i in range(12)
    ]
    ids = [f"v{i}" for i in range(12)]
    reply = api.post(URL, json={"ids": ids, "vectors_b64": b64(matrix), "payloads": payloads})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"collection": "vecs", "received": 12, "indexed": 12, "skipped": 0, "count": 12}
    for i in (0, 5, 11):
        hit = top_hit(api, matrix[i])
        assert (hit["id"], hit["text"], hit["title"]) == (f"v{i}", f"text {i}", f"T{i}")
        assert hit["metadata"] == payloads[i]["metadata"] and hit["score"] == pytest.approx(1.0, abs=1e-5)
    odd = top_hit(api, matrix[4], filter={"must": [{"key": "kind", "match": "odd"}]})
    assert odd["id"] != "v4" and int(odd["id"][1:]) % 2 == 1  # filters work on uploaded metadata
    # the collection is lexical (the default): uploaded points get BM25 vectors from their title and text
    words = api.post("/v1/collections/vecs/search", json={"query": "T7", "mode": "lexical", "top_k": 3})
    assert [h["id"] for h in words.json()["hits"]] == ["v7"], words.text


def test_json_vectors_integer_ids_and_resume(api: TestClient) -> None:
    make(api)
    matrix = random_vectors(6, seed=1)
    first = api.post(URL, json={"ids": [1, 2, 3], "vectors": matrix[:3].tolist()})
    assert first.status_code == 200 and first.json()["count"] == 3, first.text
    hit = top_hit(api, matrix[1])
    assert (hit["id"], hit["text"], hit["metadata"]) == ("2", None, {})
    resumed = api.post(
        URL, json={"ids": [1, 2, 3, 4, 5, 6], "vectors_b64": b64(matrix), "skip_existing": True}
    )
    assert resumed.json() == {"collection": "vecs", "received": 6, "indexed": 3, "skipped": 3, "count": 6}
    assert top_hit(api, matrix[5])["id"] == "6"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"ids": ["a", "b"], "vectors": [[0.1] * DIMS, [0.1] * (DIMS - 1)]}, 422, ["vectors[1]", "31 dimensions", "has 32"]),
        ({"ids": ["a", "b"], "vectors_b64": b64(random_vectors(2, dims=DIMS + 1))}, 422, ["33 float32 per id", "32 dimensions"]),
        ({"ids": ["a", "b"], "vectors": [[0.1] * DIMS, [float("nan")] * DIMS]}, 422, ["vector 1 (id 'b')", "NaN"]),
        ({"ids": ["a", "b"], "vectors": [[1e39] * DIMS, [0.1] * DIMS]}, 422, ["vector 0 (id 'a')", "infinity"]),
        ({"ids": ["a", "b", "a"], "vectors_b64": b64(random_vectors(3))}, 422, ["id 'a' appears more than once"]),
        ({"ids": ["a", " "], "vectors_b64": b64(random_vectors(2))}, 422, ["ids[1] must not be empty"]),
        ({"ids": ["a"], "vectors_b64": "not base64!"}, 422, ["not valid base64"]),
        ({"ids": ["a"]}, 422, ["exactly one of 'vectors' or 'vectors_b64'"]),
        ({"ids": ["a"], "vectors": [[0.1] * DIMS], "payloads": []}, 422, ["0 payloads for 1 ids"]),
        ({"ids": ["a"], "vectors": [[0.1] * DIMS], "payloads": [{"metadata": {"year": "soon"}}]}, 422, ["id 'a'", "metadata 'year' must be integer"]),
        ({"ids": ["a"], "vectors": [[0.1] * DIMS], "payloads": [{"metadata": {"text": "x"}}]}, 422, ["reserved keys"]),
        ({"ids": [f"i{i}" for i in range(21)], "vectors_b64": b64(random_vectors(21))}, 413, ["21 vectors", "max_vectors_per_upload"]),
    ],
)  # fmt: skip
def test_bad_batches_are_refused_whole(api: TestClient, body: dict, status: int, words: list[str]) -> None:
    make(api)
    api.post(URL, json={"ids": ["keep"], "vectors": [[0.5] * DIMS]})
    kind = "limit_exceeded" if status == 413 else "invalid_request"
    raw = json.dumps(body)  # Python's json writes NaN as the literal NaN, which JSON parsers often accept
    assert_error(
        api.post(URL, content=raw, headers={"content-type": "application/json"}), status, kind, *words
    )
    assert count(api) == 1  # nothing half-written


def test_unknown_collection_and_a_reindex_in_progress(api: TestClient, core: GatewayCore) -> None:
    body = {"ids": ["a"], "vectors": [[0.1] * DIMS]}
    assert_error(api.post("/v1/collections/ghost/vectors", json=body), 404, "not_found", "ghost")
    make(api)
    core.registry.set_collection_status("vecs", "reindexing")
    assert_error(api.post(URL, json=body), 409, "conflict", "being re-indexed", "after the re-index")
    core.registry.set_collection_status("vecs", "ready")
    assert count(api) == 0


def test_a_reindex_that_starts_while_an_upload_is_checked_refuses_it_whole(
    api: TestClient, core: GatewayCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The re-index may start through another gateway replica at any moment: the write re-checks
    under the collection row's lock, so the vectors are refused, not left out of the new copy."""
    make(api)
    existing_ids = core.store.existing_ids

    def reindex_starts_meanwhile(physical: str, ids: list[str]) -> set[str]:
        core.registry.start_mirror("vecs", physical_name="vecs-new", model="another")
        return existing_ids(physical, ids)

    monkeypatch.setattr(core.store, "existing_ids", reindex_starts_meanwhile)
    body = {"ids": ["a", "b"], "vectors": [[0.1] * DIMS, [0.2] * DIMS], "skip_existing": True}
    assert_error(api.post(URL, json=body), 409, "conflict", "being re-indexed")
    core.registry.end_mirror("vecs", "vecs-new")
    assert count(api) == 0


def test_a_point_without_text_is_named_not_a_key_error() -> None:
    with pytest.raises(InvalidInput, match="point 'v1' was uploaded as a precomputed vector without text"):
        document_of({"id": "v1", "text": None, "title": None})
    with pytest.raises(InvalidInput, match="point 'v2'"):
        document_of({"id": "v2"})


@pytest.fixture()
def reindex_api(
    tmp_path: Path, tracking: dict[str, object], tiny_embedder: TextEmbedder
) -> Iterator[TestClient]:
    settings = unit_settings(tmp_path, mlflow_tracking_uri=str(tracking["uri"]))
    with in_process_core(
        settings, LocalEmbedder("tiny", tiny_embedder, loader=registry_loader(settings))
    ) as core:
        app = create_app(core, jobs=JobService(core.settings, core.registry, NoRay()))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


def test_reindex_of_vectors_without_text_fails_with_a_clear_message(reindex_api: TestClient) -> None:
    api = reindex_api
    make(api)
    docs = [{"id": f"d{i}", "text": f"document {i}"} for i in range(3)]
    assert api.post("/v1/collections/vecs/documents", json={"documents": docs}).status_code == 200
    with_text = {"ids": ["t1"], "vectors": [[0.2] * DIMS], "payloads": [{"text": "re-embeddable"}]}
    assert api.post(URL, json=with_text).status_code == 200
    assert api.post(URL, json={"ids": ["bare"], "vectors": [[0.3] * DIMS]}).status_code == 200
    job = api.post("/v1/collections/vecs/reindex", json={"model": f"models:/{MODEL}/2"}).json()
    final = wait_job(api, job["id"])
    assert final["status"] == "failed"
    assert "point 'bare' was uploaded as a precomputed vector without text" in final["error"]
    info = api.get("/v1/collections/vecs").json()
    assert (info["dimensions"], info["count"], info["status"]) == (DIMS, 5, "ready")  # the old one serves on


BINARY = {"content-type": "application/octet-stream"}


def binary(header: dict, matrix: np.ndarray) -> bytes:
    return json.dumps(header).encode() + b"\n" + np.ascontiguousarray(matrix, dtype="<f4").tobytes()


def test_binary_upload_is_found_by_its_own_vectors(api: TestClient) -> None:
    make(api)
    matrix = random_vectors(5, seed=3)
    header = {
        "ids": ["a", "b", "c", "d", "e"],
        "payloads": [{"text": "t"}, {}, {}, {}, {"metadata": {"year": 1}}],
    }
    reply = api.post(f"{URL}/binary", content=binary(header, matrix), headers=BINARY)
    assert reply.json() == {"collection": "vecs", "received": 5, "indexed": 5, "skipped": 0, "count": 5}, (
        reply.text
    )
    hit = top_hit(api, matrix[4])
    assert (hit["id"], hit["metadata"]) == ("e", {"year": 1})
    again = api.post(
        f"{URL}/binary", content=binary({**header, "skip_existing": True}, matrix), headers=BINARY
    )
    assert (again.json()["skipped"], again.json()["count"]) == (5, 5)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\x00\x01\x02 no header", ["no header line"]),
        (b"{not json\n" + b"\x00" * 128, ["header line is not valid JSON"]),
        (b"[1, 2]\n" + b"\x00" * 128, ["header line must be a JSON object"]),
        (binary({"ids": ["a", "b"]}, random_vectors(2, dims=DIMS - 2)), ["binary vectors hold 240 bytes", "30 float32 per id"]),
        (binary({"ids": ["a"], "payloads": []}, random_vectors(1)), ["0 payloads for 1 ids"]),
        (binary({"ids": ["a"], "vectors_b64": ""}, random_vectors(1)), ["vectors_b64", "Extra inputs"]),
        (binary({"ids": ["a", "a"]}, random_vectors(2)), ["id 'a' appears more than once"]),
        (binary({"ids": ["a"]}, np.full((1, DIMS), np.inf)), ["contains NaN or infinity"]),
    ],
)  # fmt: skip
def test_bad_binary_batches_are_refused_whole(api: TestClient, body: bytes, words: list[str]) -> None:
    make(api)
    assert_error(api.post(f"{URL}/binary", content=body, headers=BINARY), 422, "invalid_request", *words)
    assert count(api) == 0
