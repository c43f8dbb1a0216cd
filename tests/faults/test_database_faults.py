"""The registry database (PostgreSQL) goes away under a working gateway, then comes back.

The gateway reaches the session's PostgreSQL server through a TCP proxy the test controls:
`Proxy.cut()` closes the listener and every live connection, which is what a stopped or
crashed server looks like from the gateway (refused connects, dropped sockets), without
stopping the server the other tests share. While it is cut every route that needs the
registry (the API key check first) answers 503 with a JSON body and ``Retry-After`` (not a
500, nor a 401), /healthz reports the database down, and nothing is half-written; once it is
back the same gateway serves again (pre-ping replaces the dead pooled connections) with the
registry and the vectors in step.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from fastapi.testclient import TestClient

from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.auth import KeyStore
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.jobs import JobService
from counterpoint.settings import Settings
from tests.fakes import NoRay
from tests.faults.conftest import free_port

pytestmark = [pytest.mark.faults, pytest.mark.postgres]


class Proxy:
    """A TCP forwarder 127.0.0.1:port -> upstream that can be cut off and restored."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and drop the open ones, as a dead server would."""
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
            self.listener.close()
            self.listener = None
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture()
def database(postgres_url: str) -> Iterator[sqlalchemy.URL]:
    """A fresh database on the shared server, dropped afterwards."""
    name = f"faults_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sqlalchemy.make_url(postgres_url).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture()
def proxy(database: sqlalchemy.URL) -> Iterator[Proxy]:
    p = Proxy((database.host or "127.0.0.1", int(database.port or 5432)))
    p.start()
    yield p
    p.cut()


@pytest.fixture()
def gateway(
    tmp_path: Path, database: sqlalchemy.URL, proxy: Proxy, tiny_model: Path
) -> Iterator[tuple[TestClient, GatewayCore]]:
    url = database.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = Settings(
        data_dir=tmp_path / "data",
        embed_model="tiny",
        database_url=url,
        start_mlflow=False,
        auth_enabled=True,
        auth_cache_ttl_s=0,  # every request checks its key in the registry
        rate_limit=None,
    )
    registry = Registry.from_url(settings.db_url)
    store = EdgeVectorStore(settings.vectors_dir)
    core = GatewayCore(settings, registry, store, LocalEmbedder("tiny", TextEmbedder(str(tiny_model))))
    app = create_app(core, jobs=JobService(settings, registry, NoRay()))
    _, key = KeyStore(registry, settings).create("faults", ["admin"])
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=False, headers=headers) as client:
        yield client, core
    store.close()
    registry.close()


DOCS = [
    {"id": f"d{i}", "text": f"document {i} about the harbor", "metadata": {"year": 2000 + i}}
    for i in range(10)
]
SEARCH = {"query": "document 3 about the harbor", "top_k": 3}


def test_the_gateway_answers_503_while_its_database_is_gone_and_recovers(
    gateway: tuple[TestClient, GatewayCore], proxy: Proxy
) -> None:
    api, core = gateway
    assert api.post("/v1/collections", json={"name": "papers"}).status_code == 201
    assert api.post("/v1/collections/papers/documents", json={"documents": DOCS}).status_code == 200
    assert api.post("/v1/collections/papers/search", json=SEARCH).status_code == 200
    physical = core.registry.get_collection("papers").physical_name

    proxy.cut()
    calls = [
        ("GET", "/v1/collections", None),
        ("GET", "/v1/collections/papers", None),
        ("POST", "/v1/collections/papers/search", SEARCH),
        ("POST", "/v1/collections/papers/documents", {"documents": [{"id": "late", "text": "a late one"}]}),
        ("POST", "/v1/collections", {"name": "other"}),
        ("GET", "/v1/jobs", None),
    ]
    for method, path, body in calls:
        reply = api.request(method, path, json=body)
        assert reply.status_code == 503, (path, reply.status_code, reply.text)
        assert reply.headers["retry-after"] == "1"
        error = reply.json()["error"]
        assert error["type"] == "unavailable" and "registry database" in error["message"], error
        assert "Traceback" not in reply.text
    health = api.get("/healthz")
    assert health.status_code == 200
    assert health.json()["components"]["database"]["status"] == "down"
    assert health.json()["status"] == "degraded"
    # nothing half-done while it was gone: no vectors written, no collection created
    assert core.store.count(physical) == len(DOCS)
    assert core.store.existing_ids(physical, ["late"]) == set()

    proxy.start()
    listed = api.get("/v1/collections")
    assert listed.status_code == 200, listed.text
    assert [(c["name"], c["count"]) for c in listed.json()["collections"]] == [("papers", len(DOCS))]
    hits = api.post("/v1/collections/papers/search", json=SEARCH)
    assert hits.status_code == 200 and hits.json()["hits"][0]["id"] == "d3"
    assert api.post("/v1/collections", json={"name": "other"}).status_code == 201  # the name was never taken
    assert api.get("/healthz").json()["components"]["database"]["status"] == "ok"
