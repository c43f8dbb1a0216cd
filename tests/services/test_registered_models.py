"""Registered models through the gateway: serve models:/NAME@alias, move the alias, list the registry.

A real MLflow store (SQLite in a temporary directory) holds two versions of a tiny bi-encoder of
different sizes, so which version answered is visible in the vector length.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from counterpoint.errors import NotFound
from counterpoint.models.embedder import TextEmbedder
from counterpoint.models.pool import EmbedderPool
from counterpoint.services.embed.backends import LocalEmbedder, registry_loader
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.models import ModelRegistryService
from tests.services.conftest import MODEL
from tests.services.in_process import in_process_core
from tests.settings_factory import unit_settings


@pytest.fixture()
def registered_api(
    tmp_path: Path, tracking: dict[str, object], tiny_embedder: TextEmbedder
) -> Iterator[TestClient]:
    settings = unit_settings(tmp_path, mlflow_tracking_uri=str(tracking["uri"]), model_alias_ttl_s=0)
    embedder = LocalEmbedder("tiny", tiny_embedder, loader=registry_loader(settings))
    with in_process_core(settings, embedder) as core:
        app = create_app(core, registry=ModelRegistryService(settings))
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client


def _embed(api: TestClient, model: str, texts: list[str]) -> dict:
    reply = api.post("/v1/embeddings", json={"input": texts, "model": model})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_alias_is_served_as_its_concrete_version_and_follows_a_move(
    registered_api: TestClient, tracking: dict[str, object]
) -> None:
    texts = ["contrastive learning of sentence embeddings", "a lighthouse"]
    body = _embed(registered_api, f"models:/{MODEL}@champion", texts)
    assert body["model"] == f"models:/{MODEL}/1"
    expected = TextEmbedder(str(tracking["paths"][1])).embed(texts).vectors  # type: ignore[index]
    got = np.array([item["embedding"] for item in body["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected, atol=1e-5)

    moved = registered_api.put(f"/v1/registry/models/{MODEL}/aliases/champion", json={"version": "2"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["aliases"] == {"champion": "2"}
    body = _embed(registered_api, f"models:/{MODEL}@champion", texts)
    assert body["model"] == f"models:/{MODEL}/2"
    assert len(body["data"][0]["embedding"]) == 48
    served = {m["id"]: m["dimensions"] for m in registered_api.get("/v1/models").json()["data"]}
    assert served == {"tiny": 32, f"models:/{MODEL}/1": 32, f"models:/{MODEL}/2": 48}
    one = registered_api.get(f"/v1/models/models:/{MODEL}/2")  # an id with slashes
    assert one.status_code == 200 and one.json()["dimensions"] == 48
    registered_api.put(f"/v1/registry/models/{MODEL}/aliases/champion", json={"version": "1"})


def test_collection_keeps_the_version_its_vectors_came_from(registered_api: TestClient) -> None:
    created = registered_api.post(
        "/v1/collections", json={"name": "reg", "model": f"models:/{MODEL}@champion"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["model"] == f"models:/{MODEL}/1"
    docs = [{"id": "d1", "text": "lighthouses guide ships"}, {"id": "d2", "text": "bread and butter"}]
    assert registered_api.post("/v1/collections/reg/documents", json={"documents": docs}).status_code == 200
    registered_api.put(f"/v1/registry/models/{MODEL}/aliases/champion", json={"version": "2"})
    try:
        hits = registered_api.post("/v1/collections/reg/search", json={"query": "lighthouses guide ships"})
        assert hits.status_code == 200, hits.text  # still the 32-d v1: no dimension mismatch
        assert hits.json()["hits"][0]["id"] == "d1"
    finally:
        registered_api.put(f"/v1/registry/models/{MODEL}/aliases/champion", json={"version": "1"})


def test_deploy_and_registry_listing(registered_api: TestClient) -> None:
    card = registered_api.post("/v1/models", json={"model": f"models:/{MODEL}/2"})
    assert card.status_code == 200, card.text
    assert card.json()["id"] == f"models:/{MODEL}/2" and card.json()["dimensions"] == 48
    models = registered_api.get("/v1/registry/models").json()["models"]
    mine = next(m for m in models if m["name"] == MODEL)
    assert [v["version"] for v in mine["versions"]] == ["2", "1"]
    assert mine["versions"][1]["aliases"] == ["champion"]
    assert mine["versions"][0]["metrics"] == {"ndcg_at_10": 20.0}
    assert {v["model_type"] for v in mine["versions"]} == {"bi-encoder"}
    assert registered_api.get(f"/v1/registry/models/{MODEL}").json()["aliases"] == {"champion": "1"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("post", "/v1/embeddings", {"input": "x", "model": f"models:/{MODEL}@nope"}, 404, ("alias", "nope")),
        ("post", "/v1/embeddings", {"input": "x", "model": f"models:/{MODEL}/9"}, 404, ("version 9",)),
        ("post", "/v1/embeddings", {"input": "x", "model": "models:/ghost@champion"}, 404, ("ghost",)),
        ("post", "/v1/embeddings", {"input": "x", "model": "not-served"}, 404, ("not served", "tiny")),
        ("post", "/v1/models", {"model": "models:/ghost/1"}, 404, ("ghost",)),
        ("put", f"/v1/registry/models/{MODEL}/aliases/champion", {"version": "9"}, 404, ("no version 9",)),
        ("put", f"/v1/registry/models/{MODEL}/aliases/latest", {"version": "1"}, 422, ("reserves",)),
        ("put", f"/v1/registry/models/{MODEL}/aliases/champion", {"version": "one"}, 422, ("version",)),
        ("get", "/v1/registry/models/ghost", None, 404, ("ghost",)),
        ("delete", f"/v1/registry/models/{MODEL}/aliases/nope", None, 404, ("no alias 'nope'",)),
    ],
)
def test_bad_model_references_are_clear_4xx(
    registered_api: TestClient, method: str, path: str, body: dict | None, status: int, words: tuple[str, ...]
) -> None:
    reply = registered_api.request(method.upper(), path, json=body)
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]["message"]
    assert all(w in message for w in words), message


def test_unreachable_registry_is_a_503(
    tmp_path: Path, tiny_embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = unit_settings(tmp_path, mlflow_tracking_uri="http://127.0.0.1:9")
    with (
        in_process_core(settings, LocalEmbedder("tiny", tiny_embedder)) as core,
        TestClient(create_app(core, registry=ModelRegistryService(settings))) as api,
    ):
        for reply in (
            api.post("/v1/embeddings", json={"input": "x", "model": "models:/m@champion"}),
            api.get("/v1/registry/models"),
        ):
            assert reply.status_code == 503, reply.text
            assert "MLflow" in reply.json()["error"]["message"]


# --- the pool itself --------------------------------------------------------------------------


def test_pool_loads_once_under_concurrency_and_evicts_least_recently_used(
    tiny_embedder: TextEmbedder,
) -> None:
    loads: list[str] = []
    gate = threading.Event()

    def loader(ref: str) -> TextEmbedder:
        loads.append(ref)
        gate.wait(5)
        return tiny_embedder

    pool = EmbedderPool("tiny", tiny_embedder, loader=loader, max_models=3)
    threads = [threading.Thread(target=pool.get, args=("models:/a/1",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join(5)
    assert loads == ["models:/a/1"]
    pool.get("models:/b/1")
    pool.get("models:/a/1")  # a is now the most recently used
    pool.get("models:/c/1")
    assert pool.names == ["tiny", "models:/a/1", "models:/c/1"]
    with pytest.raises(NotFound, match="not served"):
        pool.get("other")
