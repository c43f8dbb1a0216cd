"""API keys, scopes, rate limits and request limits on the real gateway app (auth on)."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from counterpoint.client import Client
from counterpoint.errors import LimitExceeded, RateLimited
from counterpoint.infra.db.registry import Registry
from counterpoint.infra.launcher import local_admin_key
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import api_routes, create_app
from counterpoint.services.gateway.auth import KeyStore, normalize_scopes
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.settings import Settings
from tests.services.conftest import TINY
from tests.services.in_process import in_process_core
from tests.settings_factory import unit_settings


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    return unit_settings(tmp_path, **{"auth_enabled": True, "rate_limit": None, **overrides})


@pytest.fixture()
def secured(tmp_path: Path, tiny_embedder: TextEmbedder) -> Iterator[tuple[TestClient, KeyStore]]:
    settings = _settings(tmp_path, max_body_bytes=4096, admin_key="bootstrap-secret")
    with (
        in_process_core(settings, LocalEmbedder(TINY, tiny_embedder)) as core,
        TestClient(create_app(core), raise_server_exceptions=False) as client,
    ):
        yield client, KeyStore(core.registry, settings)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_every_route_but_healthz_needs_a_key(secured: tuple[TestClient, KeyStore]) -> None:
    api, _ = secured
    routes = api_routes(api.app)  # type: ignore[arg-type]
    assert len(routes) > 20
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        for method in route.methods:
            reply = api.request(method, path, json={})
            if route.path == "/healthz":
                assert reply.status_code == 200
                continue
            assert reply.status_code == 401, f"{method} {route.path} answered {reply.status_code}"
            assert reply.json()["error"]["type"] == "unauthorized"
            assert reply.headers["www-authenticate"] == "Bearer"


def test_keys_are_scoped_hashed_and_revocable(
    secured: tuple[TestClient, KeyStore], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api, keys = secured
    admin = bearer("bootstrap-secret")  # settings.admin_key
    created = api.post("/v1/keys", json={"name": "search-ui", "scopes": ["search"]}, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    reader, prefix = body["key"], body["prefix"]
    assert body["scopes"] == ["read"] and reader.startswith(f"cp_{prefix}_")

    stored = keys.registry.get_api_key_by_prefix(prefix)
    assert stored.key_hash.startswith("$argon2id$") and reader not in stored.key_hash
    listed = api.get("/v1/keys", headers=admin).json()["keys"]
    assert [k["name"] for k in listed] == ["search-ui"] and "key" not in listed[0]

    assert api.post("/v1/embeddings", json={"input": ["hi"]}, headers=bearer(reader)).status_code == 200
    denied = api.post("/v1/collections", json={"name": "c"}, headers=bearer(reader))
    assert denied.status_code == 403
    assert "search-ui" in denied.json()["error"]["message"] and "'write'" in denied.json()["error"]["message"]
    assert api.get("/v1/keys", headers=bearer(reader)).status_code == 403  # keys need admin

    _, writer = keys.create("ingest-bot", ["write"])
    assert api.post("/v1/collections", json={"name": "c"}, headers=bearer(writer)).status_code == 201
    assert (
        api.post("/v1/collections/c/search", json={"query": "x"}, headers=bearer(writer)).status_code == 403
    )

    revoked = api.delete(f"/v1/keys/{prefix}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    again = api.post("/v1/embeddings", json={"input": ["hi"]}, headers=bearer(reader))
    assert again.status_code == 401 and "revoked" in again.json()["error"]["message"]
    assert reader not in again.text and reader not in caplog.text  # keys are never echoed or logged
    assert "bootstrap-secret" not in repr(keys.settings) and "bootstrap-secret" not in caplog.text


def test_bad_keys_and_scopes_are_clear_errors(secured: tuple[TestClient, KeyStore]) -> None:
    api, keys = secured
    for header in ("Bearer nope", "Bearer cp_abc_wrong", "Basic dXNlcjpwdw==", "Bearer "):
        reply = api.get("/v1/collections", headers={"Authorization": header})
        assert reply.status_code == 401 and reply.json()["error"]["message"]
    _, real = keys.create("x", ["read"])
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")  # right prefix, wrong secret
    assert api.get("/v1/collections", headers=bearer(forged)).status_code == 401
    bad = api.post("/v1/keys", json={"name": "k", "scopes": ["root"]}, headers=bearer("bootstrap-secret"))
    assert bad.status_code == 422 and "unknown scope 'root'" in bad.json()["error"]["message"]
    assert normalize_scopes(["READ", "search", "admin"]) == ["read", "admin"]


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path: Path, tiny_embedder: TextEmbedder) -> None:
    settings = _settings(tmp_path, rate_limit="3/minute")
    registry = Registry.from_url(settings.db_url)
    core = GatewayCore(
        settings, registry, EdgeVectorStore(settings.vectors_dir), LocalEmbedder(TINY, tiny_embedder)
    )
    keys = KeyStore(registry, settings)
    _, first = keys.create("a", ["read"])
    _, second = keys.create("b", ["read"])
    with TestClient(create_app(core), raise_server_exceptions=False) as api:
        codes = [api.get("/v1/collections", headers=bearer(first)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = api.get("/v1/collections", headers=bearer(first))
        assert (
            limited.json()["error"]["type"] == "rate_limited"
            and "rate_limit" in limited.json()["error"]["message"]
        )
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert api.get("/v1/collections", headers=bearer(second)).status_code == 200  # per key
        assert api.get("/healthz").status_code == 200  # probes are not limited


@contextlib.contextmanager
def _replicas(settings: Settings, embedder: TextEmbedder, n: int = 2) -> Iterator[list[TestClient]]:
    """``n`` gateway apps over one registry: what N Serve replicas of the gateway are."""
    with contextlib.ExitStack() as stack:
        apps = []
        for _ in range(n):
            core = stack.enter_context(in_process_core(settings, LocalEmbedder(TINY, embedder)))
            apps.append(stack.enter_context(TestClient(create_app(core), raise_server_exceptions=False)))
        yield apps


def test_a_key_s_rate_limit_holds_across_replicas_through_redis(
    tmp_path: Path, tiny_embedder: TextEmbedder, redis_url: str
) -> None:
    settings = _settings(tmp_path, rate_limit="3/minute", redis_url=redis_url, admin_key="boot")
    with _replicas(settings, tiny_embedder) as (one, two):
        key = one.post("/v1/keys", json={"name": "shared", "scopes": ["read"]}, headers=bearer("boot"))
        secret = key.json()["key"]
        codes = [
            api.get("/v1/collections", headers=bearer(secret)).status_code for api in (one, two, one, two)
        ]
        assert codes == [200, 200, 200, 429]  # 3 a minute in all, not 3 per replica


def test_an_unreachable_redis_lets_requests_through(tmp_path: Path, tiny_embedder: TextEmbedder) -> None:
    settings = _settings(tmp_path, rate_limit="1/minute", redis_url="redis://127.0.0.1:1/0")
    with in_process_core(settings, LocalEmbedder(TINY, tiny_embedder)) as core:
        _, key = KeyStore(core.registry, settings).create("k", ["read"])
        with TestClient(create_app(core), raise_server_exceptions=False) as api:
            codes = {api.get("/v1/collections", headers=bearer(key)).status_code for _ in range(3)}
    assert codes == {200}  # served, not limited and never a 500


def test_a_key_revoked_on_one_replica_is_refused_by_the_other(
    tmp_path: Path, tiny_embedder: TextEmbedder
) -> None:
    settings = _settings(tmp_path, admin_key="boot", auth_revocation_check_s=0.2)
    with _replicas(settings, tiny_embedder) as (one, two):
        secret = one.post(
            "/v1/keys", json={"name": "leaving", "scopes": ["read"]}, headers=bearer("boot")
        ).json()
        assert two.get("/v1/collections", headers=bearer(secret["key"])).status_code == 200  # cached on two
        assert one.delete(f"/v1/keys/{secret['id']}", headers=bearer("boot")).status_code == 200
        time.sleep(0.3)  # past auth_revocation_check_s: two asks the registry again
        refused = two.get("/v1/collections", headers=bearer(secret["key"]))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_the_sdk_waits_out_a_429_and_retries_a_bounded_number_of_times(
    tmp_path: Path, tiny_embedder: TextEmbedder
) -> None:
    settings = _settings(tmp_path, rate_limit="2/second")
    with in_process_core(settings, LocalEmbedder(TINY, tiny_embedder)) as core:
        _, key = KeyStore(core.registry, settings).create("sdk", ["read"])
        limited: list[int] = []
        http = TestClient(create_app(core), raise_server_exceptions=False, headers=bearer(key))
        http.event_hooks["response"].append(
            lambda reply: limited.append(reply.status_code) if reply.status_code == 429 else None
        )
        patient = Client("http://testserver", api_key="")
        patient._http = http
        with http:
            assert [patient.list_collections() for _ in range(5)] == [[]] * 5  # 2/second: some waited
            assert limited, "five calls at a 2/second limit met no 429: the test proves nothing"
            impatient = Client("http://testserver", api_key="", rate_limit_retries=0)
            impatient._http = http
            with pytest.raises(RateLimited, match="rate_limit"):
                for _ in range(3):
                    impatient.list_collections()


def test_body_size_limit_names_the_setting(secured: tuple[TestClient, KeyStore]) -> None:
    api, _ = secured
    admin = bearer("bootstrap-secret")
    big = {"input": ["word " * 2000]}  # ~10 kB > max_body_bytes=4096
    reply = api.post("/v1/embeddings", json=big, headers=admin)
    assert reply.status_code == 413 and "max_body_bytes" in reply.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"input": ["'
        for _ in range(100):
            yield b"word " * 20
        yield b'"]}'

    streamed = api.post(
        "/v1/embeddings", content=chunks(), headers={**admin, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413 and "max_body_bytes" in streamed.json()["error"]["message"]


def test_a_text_over_the_token_limit_is_refused(tiny_embedder: TextEmbedder) -> None:
    tiny_embedder.check_token_limit(["short text", "word " * 10], limit=16)
    with pytest.raises(LimitExceeded, match=r"text 1 has \d+ tokens; the limit is 16 .*max_text_tokens"):
        tiny_embedder.check_token_limit(["short", "word " * 40], limit=16)


def test_up_writes_a_private_local_admin_key_and_reuses_it(tmp_path: Path) -> None:
    from counterpoint.infra.db.engine import migrate

    settings = _settings(tmp_path)
    settings.resolved_data_dir.mkdir(parents=True)
    migrate(settings.db_url)
    key = local_admin_key(settings)
    assert key is not None and settings.admin_key_file.read_text().strip() == key
    assert settings.admin_key_file.stat().st_mode & 0o777 == 0o600
    assert settings.client_api_key == key  # what the CLI, SDK and UI send
    assert local_admin_key(settings) == key  # the next `up` prints the same key
    with Registry.from_url(settings.db_url) as registry:
        assert KeyStore(registry, settings).verify(key).allows("train")
        assert [k.name for k in registry.list_api_keys()] == ["local-admin"]
    assert local_admin_key(_settings(tmp_path, auth_enabled=False)) is None
    assert local_admin_key(_settings(tmp_path, admin_key="given")) == "given"
