"""A part that is down or restarting reaches callers as 503 ``unavailable`` with Retry-After, not 500.

Unit level: which exceptions count as outages (`as_unavailable`), what the gateway answers for
them (raised by the embedder or the registry, directly or wrapped), and the Serve embedder's own
mapping and bound on waiting. tests/faults/ breaks the real parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient
from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve._private.common import DeploymentID
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from counterpoint.errors import NotFound, Unavailable
from counterpoint.services.embed.backends import ServeEmbedder
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.outages import as_unavailable


def db_down() -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def chained(make: Callable[[], Exception]) -> Exception:
    try:
        raise make()
    except Exception as inner:
        try:
            raise RuntimeError("while doing something else") from inner
        except RuntimeError as outer:
            return outer


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (ActorDiedError, "ActorDiedError"),
        (lambda: ActorUnavailableError("restarting", None), "ActorUnavailableError"),
        (lambda: BackPressureError(num_queued_requests=8, max_queued_requests=8), "BackPressureError"),
        (
            lambda: DeploymentUnavailableError(DeploymentID(name="embed", app_name="x")),
            "DeploymentUnavailable",
        ),
        (db_down, "registry database is not reachable (OperationalError: connection refused)"),
        (lambda: chained(db_down), "registry database"),
        (lambda: chained(ActorDiedError), "restarting"),
    ],
)
def test_outages_are_unavailable(make: Callable[[], Exception], words: str) -> None:
    err = as_unavailable(make())
    assert isinstance(err, Unavailable) and err.status_code == 503 and err.headers == {"Retry-After": "1"}
    assert words in err.message, err.message


@pytest.mark.parametrize("exc", [ValueError("bad"), NotFound("no such collection"), RuntimeError("bug")])
def test_other_errors_are_not_outages(exc: Exception) -> None:
    assert as_unavailable(exc) is None


@pytest.mark.parametrize(
    ("target", "make", "call", "words"),
    [
        ("embedder.embed", ActorDiedError, ("POST", "/v1/embeddings", {"input": ["hi"]}), "restarting"),
        (
            "embedder.embed",
            lambda: chained(ActorDiedError),
            ("POST", "/v1/embeddings", {"input": ["hi"]}),
            "retry",
        ),
        ("registry.list_collections", db_down, ("GET", "/v1/collections", None), "registry database"),
    ],
)
def test_the_gateway_answers_503_with_retry_after(
    api: TestClient,
    core: GatewayCore,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    make: Callable[[], Exception],
    call: tuple[str, str, Any],
    words: str,
) -> None:
    owner, name = target.split(".")

    def fail(*_: Any, **__: Any) -> Any:
        raise make()

    monkeypatch.setattr(getattr(core, owner), name, fail)
    method, path, body = call
    reply = api.request(method, path, json=body)
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "1"
    assert reply.json()["error"]["type"] == "unavailable" and words in reply.json()["error"]["message"]


def test_a_plain_bug_is_still_a_500(
    api: TestClient, core: GatewayCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(core.registry, "list_collections", fail)
    reply = api.get("/v1/collections")
    assert reply.status_code == 500 and reply.json()["error"]["type"] == "internal_error"


class FakeHandle:
    """A Serve handle whose ``embed.remote(...)`` runs ``behaviour``."""

    def __init__(self, behaviour: Callable[[], Any]) -> None:
        self.behaviour = behaviour

    def __getattr__(self, method: str) -> Any:
        handle = self

        class Method:
            @staticmethod
            def remote(*_: Any) -> Any:
                return handle.behaviour()

        return Method


def test_the_serve_embedder_names_the_service_and_does_not_wait_forever() -> None:
    async def died() -> Any:
        raise ActorDiedError()

    async def never() -> Any:
        await asyncio.Event().wait()

    async def not_found() -> Any:
        raise NotFound("model 'x' is not served")

    with pytest.raises(Unavailable, match="the embedding service is restarting"):
        asyncio.run(ServeEmbedder(FakeHandle(died)).embed(["a"]))  # type: ignore[arg-type]
    with pytest.raises(Unavailable, match="did not answer within 0.05 s"):
        asyncio.run(ServeEmbedder(FakeHandle(never), timeout_s=0.05).models())  # type: ignore[arg-type]
    with pytest.raises(NotFound):  # the replica's own errors pass through unchanged
        asyncio.run(ServeEmbedder(FakeHandle(not_found)).load("x"))  # type: ignore[arg-type]
