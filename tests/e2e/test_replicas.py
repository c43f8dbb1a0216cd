"""Two gateway replicas on the real local stack (``--gateway-replicas 2``, rate limits in Redis).

The embedded engine sits in the ``vectors`` deployment both replicas call; the re-index mirror lives in
the registry, the rate-limit counters in Redis, revocations in the registry. Each response names the
replica that answered (``x-counterpoint-replica``), so every test checks that both took part.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from counterpoint.services.gateway.middleware import REPLICA_HEADER
from tests.e2e.conftest import Stack, running_stack

pytestmark = pytest.mark.e2e

RATE = 20  # requests a second per key, counted in Redis for both replicas
REVOCATION_CHECK_S = 1.0
N_DOCS = 2000  # enough pages that the re-index outlasts several writes through each replica


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    env = {
        "COUNTERPOINT_GATEWAY_REPLICAS": "2",
        "COUNTERPOINT_REDIS_URL": redis_url,
        "COUNTERPOINT_RATE_LIMIT": f"{RATE}/second",
        "COUNTERPOINT_AUTH_REVOCATION_CHECK_S": str(REVOCATION_CHECK_S),
    }
    with running_stack(tmp_path_factory.mktemp("replicas"), **env) as s:
        yield s


def http(stack: Stack, key: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {key or stack.api_key}"}, timeout=120
    )


def send(client: httpx.Client, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request; a 429 (the shared rate limit) is waited out and sent again."""
    for _ in range(200):
        reply = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        if reply.status_code != 429:
            return reply
        time.sleep(0.1)
    raise AssertionError(f"{method} {path} still limited after 200 tries")


def test_both_replicas_run_and_share_one_store(stack: Stack) -> None:
    """Each replica alone could not open the embedded engine: both see one store, the deployment's."""
    with http(stack) as client:
        body = {"name": "shared", "lexical": None}
        assert send(client, "POST", "/v1/collections", json=body).status_code == 201
        docs = [{"id": f"s{i}", "text": f"shared document {i}"} for i in range(5)]
        assert (
            send(client, "POST", "/v1/collections/shared/documents", json={"documents": docs}).status_code
            == 200
        )
        seen = {}
        for _ in range(30):
            reply = send(client, "GET", "/v1/collections/shared")
            seen[reply.headers[REPLICA_HEADER]] = reply.json()["count"]
    assert len(seen) == 2 and set(seen.values()) == {5}, seen  # both replicas, one store


def test_a_reindex_while_writers_use_both_replicas_loses_nothing(stack: Stack) -> None:
    """Writes through either replica during a re-index (here: adding BM25 vectors) reach the new
    collection, and the newest version of each id wins over the re-index's copy of the old one."""
    with http(stack) as client:
        body = {"name": "mirror", "lexical": None, "payload_indexes": {"key": "keyword"}}
        assert send(client, "POST", "/v1/collections", json=body).status_code == 201
        docs = [
            {"id": f"d{i}", "text": f"original text of document {i}", "metadata": {"key": f"d{i}"}}
            for i in range(N_DOCS)
        ]
        assert (
            send(client, "POST", "/v1/collections/mirror/documents", json={"documents": docs}).status_code
            == 200
        )
        job = send(client, "POST", "/v1/collections/mirror/reindex", json={"lexical": "bm25"})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
    latest = {d["id"]: d["text"] for d in docs}
    lock = threading.Lock()
    replicas_during: set[str] = set()
    writes = [0]

    def running() -> bool:
        with http(stack) as client:
            return send(client, "GET", f"/v1/jobs/{job_id}").json()["status"] == "running"

    def write(writer: int) -> None:
        version = 0
        with http(stack) as client:
            while running():
                version += 1
                batch = [
                    {
                        "id": f"d{i}",
                        "text": f"writer {writer} version {version} of {i}",
                        "metadata": {"key": f"d{i}"},
                    }
                    for i in range(writer + 3 * version % 200, N_DOCS, 200)  # small, frequent writes
                ]
                new = f"w{writer}-{version}"
                batch.append({"id": new, "text": f"new document {new}", "metadata": {"key": new}})
                reply = send(client, "POST", "/v1/collections/mirror/documents", json={"documents": batch})
                assert reply.status_code == 200, reply.text
                with lock:
                    latest.update({d["id"]: d["text"] for d in batch})
                    replicas_during.add(reply.headers[REPLICA_HEADER])
                    writes[0] += 1

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(write, range(3)))
    with http(stack) as client:
        final = send(client, "GET", f"/v1/jobs/{job_id}").json()
        assert final["status"] == "succeeded", final
        assert len(replicas_during) == 2, (
            f"the {writes[0]} writes during the re-index went through one replica"
        )
        info = send(client, "GET", "/v1/collections/mirror").json()
        assert (info["count"], info["lexical"]) == (len(latest), "bm25")
        ids = sorted(latest)
        stored = {}
        for start in range(0, len(ids), 50):
            chunk = ids[start : start + 50]
            query = {
                "query": "document",
                "top_k": len(chunk),
                "filter": {"must": [{"key": "key", "match": {"any": chunk}}]},
            }
            hits = send(client, "POST", "/v1/collections/mirror/search", json=query).json()["hits"]
            stored.update({h["id"]: h["text"] for h in hits})
        stale = {i: (stored.get(i), text) for i, text in latest.items() if stored.get(i) != text}
        assert stale == {}, f"{len(stale)} ids missing or older: {list(stale.items())[:3]}"
        newest = max((i for i in latest if i.startswith("w")), key=lambda i: int(i.split("-")[1]))
        lexical = {"query": latest[newest], "top_k": 1, "mode": "lexical"}
        assert (
            send(client, "POST", "/v1/collections/mirror/search", json=lexical).json()["hits"][0]["id"]
            == newest
        )


def test_a_revoked_key_is_refused_by_both_replicas(stack: Stack) -> None:
    with http(stack) as admin:
        created = send(admin, "POST", "/v1/keys", json={"name": "leaving", "scopes": ["read"]}).json()
        with http(stack, created["key"]) as user:
            before = [send(user, "GET", "/v1/collections") for _ in range(20)]
            assert {r.status_code for r in before} == {200}
            assert len({r.headers[REPLICA_HEADER] for r in before}) == 2  # the key is cached on both
            assert send(admin, "DELETE", f"/v1/keys/{created['id']}").status_code == 200
            time.sleep(REVOCATION_CHECK_S + 0.5)
            after = [send(user, "GET", "/v1/collections") for _ in range(20)]
    assert {r.status_code for r in after} == {401}, [r.text for r in after if r.status_code != 401][:2]
    assert len({r.headers[REPLICA_HEADER] for r in after}) == 2


def test_a_key_s_rate_limit_holds_across_both_replicas(stack: Stack) -> None:
    with http(stack) as admin:
        key = send(admin, "POST", "/v1/keys", json={"name": "burst", "scopes": ["read"]}).json()["key"]
    with http(stack, key) as user, ThreadPoolExecutor(8) as pool:
        started = time.monotonic()
        replies = list(pool.map(lambda _: user.get("/v1/collections/ghost"), range(4 * RATE)))  # cheap: 404
        elapsed = time.monotonic() - started
    served = sum(r.status_code == 404 for r in replies)
    limited = [r for r in replies if r.status_code == 429]
    assert served + len(limited) == len(replies)
    # a moving window: at most RATE in any second, whichever replica counts (per-replica counters: 2x)
    assert elapsed < 3, "too slow a burst to tell shared counters (RATE a second) from per-replica ones"
    assert 0 < served <= RATE * math.ceil(elapsed), (served, elapsed)
    assert len({r.headers[REPLICA_HEADER] for r in limited}) == 2  # both replicas refuse past the limit
