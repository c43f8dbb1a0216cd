"""Zero-downtime re-index: a new physical collection is built, then swapped in; failures change nothing.

The collection starts on the tiny 32-d default model and moves to ``models:/tiny-reg/2`` (48-d), a
real registered model in a SQLite MLflow store, so which model answers shows in the dimensions.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from counterpoint.infra.vectors.base import CollectionSpec
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder, registry_loader
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.jobs import JobService
from tests.fakes import NoRay
from tests.services.conftest import MODEL
from tests.services.in_process import in_process_core
from tests.settings_factory import unit_settings

NEW = f"models:/{MODEL}/2"
N_DOCS = 300


@pytest.fixture()
def core(tmp_path: Path, tracking: dict[str, object], tiny_embedder: TextEmbedder) -> Iterator[GatewayCore]:
    settings = unit_settings(
        tmp_path, mlflow_tracking_uri=str(tracking["uri"]), max_documents_per_ingest=N_DOCS
    )
    with in_process_core(
        settings, LocalEmbedder("tiny", tiny_embedder, loader=registry_loader(settings))
    ) as core:
        yield core


@pytest.fixture()
def api(core: GatewayCore) -> Iterator[TestClient]:
    app = create_app(core, jobs=JobService(core.settings, core.registry, NoRay()))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def docs(n: int = N_DOCS, prefix: str = "") -> list[dict]:
    return [
        {
            "id": f"d{i}",
            "text": f"{prefix}document number {i} about topic {i % 7}",
            "metadata": {"year": 2000 + i % 20},
        }
        for i in range(n)
    ]


INDEX = {
    "m": 8,
    "ef_construct": 40,
    "hnsw_ef": 30,
    "quantization": None,
    "oversampling": None,
    "on_disk": None,
    "datatype": None,
}


def make_collection(api: TestClient) -> dict:
    body = {"name": "papers", "payload_indexes": {"year": "integer"}, "index": INDEX}
    created = api.post("/v1/collections", json=body)
    assert created.status_code == 201, created.text
    assert api.post("/v1/collections/papers/documents", json={"documents": docs()}).status_code == 200
    return created.json()


def wait_job(api: TestClient, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def test_searches_keep_answering_during_a_reindex_then_move_at_once(api: TestClient) -> None:
    make_collection(api)
    started = api.post("/v1/collections/papers/reindex", json={"model": NEW})
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["kind"], job["status"], job["config"]["model"]) == ("reindex", "running", NEW)
    assert api.get("/v1/collections/papers").json()["status"] == "reindexing"

    during, errors, dims_seen = 0, [], set()
    query = {"query": "document number 5 about topic 5", "top_k": 3}
    while True:
        info = api.get("/v1/collections/papers").json()
        reply = api.post("/v1/collections/papers/search", json=query)
        if reply.status_code != 200:
            errors.append(reply.text)
        elif info["status"] == "reindexing":
            during += 1
            assert reply.json()["hits"][0]["id"] == "d5"  # the old model still answers
        dims_seen.add(info["dimensions"])
        if api.get(f"/v1/jobs/{job['id']}").json()["status"] != "running":
            break
    assert errors == [] and during >= 1
    final = wait_job(api, job["id"])
    assert final["status"] == "succeeded", final
    assert final["metrics"]["indexed"] == N_DOCS and final["metrics"]["count"] == N_DOCS
    info = api.get("/v1/collections/papers").json()
    assert (info["model"], info["dimensions"], info["count"], info["status"]) == (NEW, 48, N_DOCS, "ready")
    assert info["index"] == INDEX  # the new physical collection has the same index settings
    assert dims_seen <= {32, 48}
    hits = api.post(
        "/v1/collections/papers/search", json={"query": "document number 5 about topic 5", "top_k": 1}
    )
    assert hits.json()["hits"][0]["id"] == "d5"
    filtered = api.post(
        "/v1/collections/papers/search",
        json={"query": "document", "top_k": 50, "filter": {"must": [{"key": "year", "match": 2003}]}},
    ).json()["hits"]
    assert filtered and all(h["metadata"]["year"] == 2003 for h in filtered)  # metadata came along
    old_vector = api.post("/v1/collections/papers/search", json={"vector": [0.1] * 32})
    assert old_vector.status_code == 422 and "expects 48" in old_vector.json()["error"]["message"]

    assert len(info["previous"]) == 1  # the old copy is kept for a rollback until pruned
    pruned = api.delete("/v1/collections/papers/previous").json()
    assert pruned["deleted"] == info["previous"]
    assert api.get("/v1/collections/papers").json()["previous"] == []


def test_a_reindex_carries_the_bm25_vectors_over(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """BM25 vectors do not depend on the dense model: the copy takes them as they are (computing them
    again here would fail), and lexical search answers the same after the swap."""
    make_collection(api)
    query = {"query": "5", "mode": "lexical", "top_k": 100}  # "number 5", "topic 5": 43 documents
    before = api.post("/v1/collections/papers/search", json=query).json()["hits"]
    import counterpoint.infra.vectors.backend as backend

    def no_recompute(*args: object) -> None:
        raise AssertionError("a BM25 vector was computed again during the re-index")

    monkeypatch.setattr(backend, "document_vector", no_recompute)
    job = api.post("/v1/collections/papers/reindex", json={"model": NEW}).json()
    assert wait_job(api, job["id"])["status"] == "succeeded"
    info = api.get("/v1/collections/papers").json()
    assert (info["dimensions"], info["lexical"]) == (48, "bm25")
    after = api.post("/v1/collections/papers/search", json=query).json()["hits"]
    scored = [sorted((h["id"], round(h["score"], 4)) for h in hits) for hits in (before, after)]
    assert scored[0] == scored[1]  # the same BM25 scores (ties may come in another order)
    assert len(before) == len([d for d in docs() if d["text"].endswith(" 5")]) == 43


def test_a_reindex_adds_bm25_vectors_to_a_dense_only_collection(
    api: TestClient, core: GatewayCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"name": "papers", "payload_indexes": {"year": "integer"}, "lexical": None}
    assert api.post("/v1/collections", json=body).status_code == 201
    assert api.post("/v1/collections/papers/documents", json={"documents": docs()}).status_code == 200
    query = {"query": "5", "mode": "lexical", "top_k": 100}
    refused = api.post("/v1/collections/papers/search", json=query)
    assert refused.status_code == 422 and "--lexical" in refused.json()["error"]["message"]
    same = api.post("/v1/collections/papers/reindex", json={}).json()  # the same model, nothing added
    assert "nothing to re-index" in same["error"]["message"] and "lexical" in same["error"]["message"]

    dense = {"query": "document number 5 about topic 5", "top_k": 10}
    before = api.post("/v1/collections/papers/search", json=dense).json()["hits"]

    async def no_embedding(*_args: object) -> None:
        raise AssertionError("the same model: the dense vectors are carried over, not embedded again")

    monkeypatch.setattr(core, "embed_records", no_embedding)
    job = api.post("/v1/collections/papers/reindex", json={"lexical": "bm25"}).json()  # the same model
    assert wait_job(api, job["id"])["status"] == "succeeded"
    after = api.post("/v1/collections/papers/search", json=dense).json()["hits"]
    assert [(h["id"], round(h["score"], 5)) for h in after] == [
        (h["id"], round(h["score"], 5)) for h in before
    ]
    info = api.get("/v1/collections/papers").json()
    assert (info["lexical"], info["dimensions"], info["count"]) == ("bm25", 32, N_DOCS)
    hits = api.post("/v1/collections/papers/search", json=query).json()["hits"]
    assert len(hits) == 43 and all(h["text"].endswith(" 5") for h in hits)


def test_writes_during_a_reindex_are_in_the_new_collection(api: TestClient, core: GatewayCore) -> None:
    make_collection(api)
    job = api.post("/v1/collections/papers/reindex", json={"model": NEW}).json()
    late = [
        {"id": "late", "text": "a late arrival about lighthouses"},
        {"id": "d3", "text": "d3 rewritten about ships"},
    ]
    assert api.post("/v1/collections/papers/documents", json={"documents": late}).status_code == 200
    assert wait_job(api, job["id"])["status"] == "succeeded"
    info = api.get("/v1/collections/papers").json()
    assert info["count"] == N_DOCS + 1
    top = api.post(
        "/v1/collections/papers/search", json={"query": "d3 rewritten about ships", "top_k": 1}
    ).json()
    assert top["hits"][0]["id"] == "d3" and top["hits"][0]["text"] == "d3 rewritten about ships"
    hit = api.post(
        "/v1/collections/papers/search", json={"query": "a late arrival about lighthouses", "top_k": 1}
    )
    assert hit.json()["hits"][0]["id"] == "late"


def test_a_failing_reindex_leaves_the_old_collection_serving(
    api: TestClient, core: GatewayCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = make_collection(api)
    physical = core.registry.get_collection("papers").physical_name
    real_upsert = core.store.upsert
    calls = {"n": 0}

    def flaky(name: str, records: list) -> None:
        if name != physical:
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError("disk full (injected)")
        real_upsert(name, records)

    monkeypatch.setattr(core.store, "upsert", flaky)
    job = api.post("/v1/collections/papers/reindex", json={"model": NEW}).json()
    final = wait_job(api, job["id"])
    assert final["status"] == "failed" and "disk full" in final["error"]
    info = api.get("/v1/collections/papers").json()
    assert (info["model"], info["dimensions"], info["count"], info["status"]) == ("tiny", 32, N_DOCS, "ready")
    assert info["previous"] == [] and before["model"] == "tiny"
    assert not core.store.collection_exists(job["config"]["physical_name"])  # the half-built one is gone
    hits = api.post(
        "/v1/collections/papers/search", json={"query": "document number 5 about topic 5", "top_k": 1}
    )
    assert hits.status_code == 200 and hits.json()["hits"][0]["id"] == "d5"


def test_cancel_stops_a_reindex(api: TestClient, core: GatewayCore, monkeypatch: pytest.MonkeyPatch) -> None:
    make_collection(api)
    real = core._embed_chunks

    async def slow(texts: list[str], model: str):  # type: ignore[no-untyped-def]
        if model == NEW:
            await asyncio.sleep(0.3)
        return await real(texts, model)

    monkeypatch.setattr(core, "_embed_chunks", slow)
    job = api.post("/v1/collections/papers/reindex", json={"model": NEW}).json()
    assert api.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    deadline = time.monotonic() + 30
    while api.get("/v1/collections/papers").json()["status"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.05)
    info = api.get("/v1/collections/papers").json()
    assert (info["status"], info["model"]) == ("ready", "tiny")
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert not core.store.collection_exists(job["config"]["physical_name"])


def test_bad_reindex_requests_change_nothing(api: TestClient) -> None:
    make_collection(api)
    cases = [
        ("papers", {"model": "tiny"}, 422, "already uses"),
        ("papers", {"model": "models:/ghost@champion"}, 404, "ghost"),
        ("nope", {"model": NEW}, 404, "nope"),
        ("papers", {}, 422, "model"),
    ]
    for name, body, status, words in cases:
        reply = api.post(f"/v1/collections/{name}/reindex", json=body)
        assert reply.status_code == status, reply.text
        assert words in reply.json()["error"]["message"]
    assert api.get("/v1/collections/papers").json()["status"] == "ready"
    first = api.post("/v1/collections/papers/reindex", json={"model": NEW})
    again = api.post("/v1/collections/papers/reindex", json={"model": NEW})
    assert first.status_code == 202 and again.status_code == 409
    wait_job(api, first.json()["id"])


def test_a_restarted_gateway_undoes_an_interrupted_reindex(core: GatewayCore) -> None:
    core.registry.create_collection("papers", model="tiny", dimensions=32, physical_name="papers-old")
    core.store.create_collection(CollectionSpec("papers-old", 32, "cosine", {}))
    core.store.create_collection(CollectionSpec("papers-half", 48, "cosine", {}))
    core.registry.start_mirror("papers", physical_name="papers-half", model=NEW)
    config = {
        "collection": "papers",
        "physical_name": "papers-half",
        "from_physical": "papers-old",
        "model": NEW,
    }
    job = core.registry.create_job("reindex", config, status="running")
    with TestClient(create_app(core), raise_server_exceptions=False) as api:  # start-up runs recover()
        assert api.get("/v1/collections/papers").json()["status"] == "ready"
    assert not core.store.collection_exists("papers-half") and core.store.collection_exists("papers-old")
    recovered = core.registry.get_job(job.id)
    assert recovered.status == "failed" and "restarted" in (recovered.error or "")
    assert not core.registry.get_collection("papers").reindexing  # writes no longer mirrored


def test_another_replica_undoes_only_a_silent_reindex(core: GatewayCore) -> None:
    """With several replicas, a re-index is another replica's until it has been silent too long."""
    core.registry.create_collection("papers", model="tiny", dimensions=32, physical_name="papers-old")
    core.store.create_collection(CollectionSpec("papers-old", 32, "cosine", {}))
    core.store.create_collection(CollectionSpec("papers-half", 48, "cosine", {}))
    core.registry.start_mirror("papers", physical_name="papers-half", model=NEW)
    config = {"collection": "papers", "physical_name": "papers-half", "from_physical": "papers-old"}
    job = core.registry.create_job("reindex", config, status="running")  # another replica's, just updated
    asyncio.run(core.reindexer.recover(stale_after_s=60))
    assert (
        core.registry.get_job(job.id).status == "running"
        and core.registry.get_collection("papers").reindexing
    )
    assert core.store.collection_exists("papers-half")
    time.sleep(0.05)
    asyncio.run(core.reindexer.recover(stale_after_s=0.01))  # silent for longer than that: its replica died
    assert core.registry.get_job(job.id).status == "failed"
    assert not core.registry.get_collection("papers").reindexing
    assert not core.store.collection_exists("papers-half") and core.store.collection_exists("papers-old")


def test_writes_through_two_gateway_replicas_during_a_reindex_lose_nothing(
    api: TestClient, core: GatewayCore, tiny_embedder: TextEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways over one registry and one store, as two Serve replicas are: a re-index started on
    one sees every write that either takes meanwhile, and keeps the newest version of each id."""
    from counterpoint.infra.db.registry import Registry
    from counterpoint.services.gateway import reindex

    make_collection(api)
    copy = reindex.Reindexer._copy

    def slow_copy(self: reindex.Reindexer, *args: object) -> None:
        time.sleep(0.03)  # a page at a time, so the writers below run while the copy goes on
        copy(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reindex, "PAGE", 16)
    monkeypatch.setattr(reindex.Reindexer, "_copy", slow_copy)
    embedder = LocalEmbedder(
        "tiny", tiny_embedder, loader=registry_loader(core.settings)
    )  # its own, as a replica's
    other = GatewayCore(core.settings, Registry.from_url(core.settings.db_url), core.store, embedder)
    with TestClient(create_app(other), raise_server_exceptions=False) as api_b:
        job = api.post("/v1/collections/papers/reindex", json={"model": NEW}).json()
        latest: dict[str, str] = {f"d{i}": d["text"] for i, d in enumerate(docs())}
        during = {"a": 0, "b": 0}

        def write(client: TestClient, side: str, parity: int) -> None:
            version = 0
            while api.get(f"/v1/jobs/{job['id']}").json()["status"] == "running":
                version += 1
                batch = [
                    {"id": f"d{i}", "text": f"{side} version {version} of document {i}"}
                    for i in range(parity + 2 * version % 40, N_DOCS, 40)
                ] + [
                    {"id": f"{side}-new-{version}", "text": f"new document {version} written through {side}"}
                ]
                assert (
                    client.post("/v1/collections/papers/documents", json={"documents": batch}).status_code
                    == 200
                )
                latest.update({d["id"]: d["text"] for d in batch})
                during[side] += 1

        writers = [
            threading.Thread(target=write, args=(api, "a", 0)),
            threading.Thread(target=write, args=(api_b, "b", 1)),
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert wait_job(api, job["id"])["status"] == "succeeded"
    other.registry.close()
    assert during["a"] >= 3 and during["b"] >= 3, during  # both replicas wrote while the copy ran

    row = core.registry.get_collection("papers")
    assert (row.model, row.reindexing) == (NEW, False)
    stored: dict[str, str] = {}
    offset = None
    while True:
        page, offset = core.store.scroll(row.physical_name, 256, offset)
        stored.update({r.id: r.payload["text"] for r in page})
        if offset is None:
            break
    assert set(stored) == set(latest) and core.store.count(row.physical_name) == len(latest)
    stale = {i: (stored[i], latest[i]) for i in latest if stored[i] != latest[i]}
    assert stale == {}, f"{len(stale)} ids hold an older version: {list(stale.items())[:3]}"
    with core.registry.locked("papers") as locked:
        assert locked.mirrored(latest) == set()  # the mirror's bookkeeping went with the switch
