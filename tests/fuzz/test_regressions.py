"""Plain regression tests for what the schema fuzzer (test_gateway_fuzz.py) found.

1. ``payload_indexes`` with a name the vector engine rejects as a field path (``""``, ``"a b"``,
   ``"$"``) was a 500 from deep inside Qdrant; now a 422 before anything is created.
2. With auth on, a body FastAPI cannot parse (bad JSON) was answered 422 before the key was
   checked, since FastAPI parses the body before route dependencies run: now 401/403 first.
"""

from __future__ import annotations

import pytest

from counterpoint.errors import InvalidInput
from counterpoint.infra.vectors.base import CollectionSpec
from counterpoint.infra.vectors.edge import EdgeVectorStore
from tests.fuzz.conftest import Gateway


@pytest.mark.parametrize("field", ["", " ", "a b", "$", "a..b", "a/b", "x" * 65])
def test_an_index_name_the_engine_rejects_is_a_422_and_creates_nothing(
    open_gateway: Gateway, field: str
) -> None:
    api = open_gateway.client
    response = api.post("/v1/collections", json={"name": "idx-name", "payload_indexes": {field: "keyword"}})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request"
    assert "payload index names" in response.json()["error"]["message"]
    assert api.get("/v1/collections/idx-name").status_code == 404
    ok = api.post("/v1/collections", json={"name": "idx-name", "payload_indexes": {"year-2_x": "integer"}})
    assert ok.status_code == 201, ok.text
    assert api.delete("/v1/collections/idx-name").status_code == 200


def test_the_vector_store_checks_index_names_before_creating_anything(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = EdgeVectorStore(tmp_path)
    try:
        with pytest.raises(InvalidInput, match="payload index names"):
            store.create_collection(CollectionSpec("c1", 4, "cosine", {"a b": "keyword"}))
        assert not (tmp_path / "c1").exists()
    finally:
        store.close()


def post_raw(gateway: Gateway, path: str, body: bytes, key: str | None) -> object:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return gateway.client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe{"], ids=["bad-json", "bad-utf8"])
def test_an_unparseable_body_without_a_key_is_a_401(guarded_gateway: Gateway, body: bytes) -> None:
    response = post_raw(guarded_gateway, "/v1/embeddings", body, None)
    assert response.status_code == 401, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["type"] == "unauthorized"  # type: ignore[attr-defined]
    assert response.headers["www-authenticate"] == "Bearer"  # type: ignore[attr-defined]
    wrong = post_raw(guarded_gateway, "/v1/embeddings", body, "cp_0123456789ab_" + "x" * 43)
    assert wrong.status_code == 401  # type: ignore[attr-defined]


def test_an_unparseable_body_with_a_key_lacking_the_scope_is_a_403(guarded_gateway: Gateway) -> None:
    response = post_raw(guarded_gateway, "/v1/collections", b"{not json", guarded_gateway.read_key)
    assert response.status_code == 403, response.text  # type: ignore[attr-defined]
    assert response.json()["error"]["type"] == "forbidden"  # type: ignore[attr-defined]


def test_an_unparseable_body_with_a_valid_key_says_what_is_wrong(guarded_gateway: Gateway) -> None:
    admin = guarded_gateway.headers["Authorization"].removeprefix("Bearer ")
    response = post_raw(guarded_gateway, "/v1/collections", b'{"name": ', admin)
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "invalid_request"
    assert error["message"].startswith("body is not valid JSON (Expecting value at character 9)"), error
