"""The embed replica SIGKILLed while clients stream requests through the real Serve graph.

`build_app` (the graph `counterpoint up` and Helm run) is deployed with the tiny model and no
decoder; four clients keep calling ``/v1/embeddings`` over HTTP (one of them with 512-text
requests, so a call is usually running on the replica when it dies). Serve must bring up a new
replica; meanwhile a caller sees a 503 with ``Retry-After`` only for a request that was in flight
when the replica died (or sent before the gateway noticed), never a 500; no request hangs (the
others wait for the new replica), and afterwards the same texts get the same vectors from it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from counterpoint.settings import Settings
from tests.faults.conftest import free_port, ray_processes, wait_for

pytestmark = pytest.mark.faults

CLIENTS = 4
CLIENT_TIMEOUT_S = 90  # a request not answered by then counts as a hang
REPLICA = "ray::ServeReplica:counterpoint:embed"
SMALL = {"input": ["the lighthouse keeper", "a quiet harbor"], "model": "tiny"}
BIG = {"input": ["lorem ipsum dolor sit amet " * 12] * 512, "model": "tiny"}


@pytest.fixture(scope="module")
def serve_url(ray_cluster: str, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from ray import serve

    from counterpoint.services.app import APP_NAME, build_app

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("serve") / "data",
        embed_model="tiny",
        embed_model_path=str(tiny_model),
        decode_enabled=False,
        start_mlflow=False,
        auth_enabled=False,
        rate_limit=None,
        torch_threads=1,
        max_texts_per_request=512,
        embed_timeout_s=CLIENT_TIMEOUT_S / 2,
    )
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()


@dataclass
class Reply:
    started: float
    status: int | None  # None: no answer (timeout or connection error)
    retry_after: str | None = None
    body: dict | None = None
    error: str | None = None


@dataclass(eq=False)  # threads are hashed by identity
class Client(threading.Thread):
    url: str
    body: dict
    replies: list[Reply] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    busy_since: float | None = None  # when the request now waiting for its answer was sent

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=CLIENT_TIMEOUT_S) as http:
            while not self.stop.is_set():
                started = self.busy_since = time.monotonic()
                try:
                    reply = http.post(f"{self.url}/v1/embeddings", json=self.body)
                except httpx.HTTPError as exc:
                    self.replies.append(Reply(started, None, error=f"{type(exc).__name__}: {exc}"))
                    continue
                finally:
                    self.busy_since = None
                self.replies.append(
                    Reply(started, reply.status_code, reply.headers.get("retry-after"), reply.json())
                )
                time.sleep(0.02)

    def ok_since(self, moment: float) -> int:
        return sum(1 for r in self.replies if r.started > moment and r.status == 200)


def test_a_killed_embed_replica_is_replaced_with_bounded_503s_and_no_hangs(serve_url: str) -> None:
    before = httpx.post(f"{serve_url}/v1/embeddings", json=SMALL, timeout=60)
    assert before.status_code == 200, before.text
    clients = [Client(serve_url, BIG if i == 0 else SMALL) for i in range(CLIENTS)]
    for client in clients:
        client.start()
    try:
        wait_for(lambda: all(c.ok_since(0) >= 1 for c in clients), "every client's first answer")

        def big_request_running() -> bool:  # most likely on the replica by now (one takes ~1 s)
            since = clients[0].busy_since
            return since is not None and time.monotonic() - since > 0.3

        wait_for(big_request_running, "a 512-text request in flight")
        replicas = ray_processes(REPLICA)
        assert len(replicas) == 1, replicas
        old_pid = replicas[0].pid
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)

        def replaced() -> bool:
            return [p.pid for p in ray_processes(REPLICA)] not in ([], [old_pid])

        wait_for(replaced, "Serve to start a new embed replica", timeout=CLIENT_TIMEOUT_S)
        wait_for(lambda: all(c.ok_since(killed_at) >= 2 for c in clients), "answers from the new replica")
    finally:
        for client in clients:
            client.stop.set()
        for client in clients:
            client.join(timeout=CLIENT_TIMEOUT_S + 10)
    assert not any(c.is_alive() for c in clients), "a client is still waiting for an answer"

    replies = [r for c in clients for r in c.replies]
    assert [r.error for r in replies if r.status is None] == []  # every request was answered in time
    assert {r.status for r in replies} <= {200, 503}, [r.body for r in replies if r.status not in (200, 503)]
    unavailable = [r for r in replies if r.status == 503]
    # per client: the request in flight when the replica died, and at most one sent before the
    # gateway's router learned of it; later ones wait for the new replica
    assert all(sum(r.status == 503 for r in c.replies) <= 2 for c in clients), [
        [r.status for r in c.replies] for c in clients
    ]
    for reply in unavailable:
        assert reply.started < killed_at + CLIENT_TIMEOUT_S
        assert reply.retry_after == "1"
        assert reply.body is not None and reply.body["error"]["type"] == "unavailable"
        assert "embedding service" in reply.body["error"]["message"]

    after = httpx.post(f"{serve_url}/v1/embeddings", json=SMALL, timeout=60)
    assert after.status_code == 200
    old_vectors = np.array([item["embedding"] for item in before.json()["data"]])
    new_vectors = np.array([item["embedding"] for item in after.json()["data"]])
    assert new_vectors.shape == (2, 32)
    assert np.allclose(new_vectors, old_vectors, atol=1e-5)  # the same model came back
    health = httpx.get(f"{serve_url}/healthz", timeout=30).json()
    assert health["components"]["embed"]["status"] == "ok"
