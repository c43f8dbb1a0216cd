"""End to end on the real platform: Ray Serve + MLflow + embedded Qdrant + SQLite, driven by the CLI/SDK.

A slice of SciFact (40 test queries, their relevant abstracts and other abstracts) is ingested
through the CLI, searched, and evaluated; the platform's metrics must equal an in-process
exact search with the same model, and its embeddings must equal sentence-transformers'.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from sentence_transformers import SentenceTransformer

from counterpoint.client import Client
from counterpoint.datasets import default_scifact, passage_text
from counterpoint.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from counterpoint.evaluation import evaluate_run, exact_search
from counterpoint.models.export import auto_backend, split_backend
from counterpoint.models.paths import packaged_minilm_path
from tests.e2e.conftest import PORTS, Stack, port_open, start, stop
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.e2e

N_QUERIES, N_DOCS = 40, 200
GATEWAY_REPLICA = "ray::ServeReplica:counterpoint:gateway"


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict]:
    data = default_scifact()
    qrels = data.qrels("test")
    qids = sorted(qrels)[:N_QUERIES]
    wanted = {doc for qid in qids for doc in qrels[qid]}
    others = [doc for doc in sorted(data.corpus) if doc not in wanted]
    doc_ids = sorted(wanted) + others[: N_DOCS - len(wanted)]
    root = tmp_path_factory.mktemp("slice")
    with (root / "docs.jsonl").open("w") as handle:
        for i, doc_id in enumerate(doc_ids):
            doc = data.corpus[doc_id]
            meta = {"bucket": i % 3}
            handle.write(
                json.dumps({"id": doc_id, "title": doc["title"], "text": doc["text"], "metadata": meta})
                + "\n"
            )
    with (root / "queries.jsonl").open("w") as handle:
        for qid in qids:
            handle.write(json.dumps({"_id": qid, "text": data.queries[qid]}) + "\n")
    with (root / "qrels.tsv").open("w") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid in qids:
            for doc_id, grade in qrels[qid].items():
                handle.write(f"{qid}\t{doc_id}\t{grade}\n")
    corpus = {d: passage_text(data.corpus[d]["title"], data.corpus[d]["text"]) for d in doc_ids}
    return {"docs": root / "docs.jsonl", "queries": root / "queries.jsonl", "qrels": root / "qrels.tsv",
            "corpus": corpus, "query_texts": {q: data.queries[q] for q in qids}, "judged": {q: qrels[q] for q in qids}}  # fmt: skip


@pytest.fixture(scope="module")
def reference_model() -> SentenceTransformer:
    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = 128
    return model


def test_health_and_parts(stack: Stack) -> None:
    health = stack.client().health()
    assert health.status == "ok"
    assert {"database", "embed", "vectors", "serve", "mlflow"} <= set(health.components)
    assert httpx.get(f"http://127.0.0.1:{PORTS['MLFLOW_PORT']}/health").status_code == 200
    assert httpx.get(f"{stack.url}/docs").status_code == 200
    assert "ok" in stack.cli("status").stdout


def test_embeddings_over_http_equal_sentence_transformers(
    stack: Stack, reference_model: SentenceTransformer
) -> None:
    texts = ["Contrastive learning pulls positives together.", "Vitamin D deficiency and bone density."]
    reply = httpx.post(
        f"{stack.url}/v1/embeddings",
        json={"input": texts, "model": "all-MiniLM-L6-v2"},
        headers=stack.headers,
        timeout=60,
    )
    assert reply.status_code == 200
    # the stack runs as `make up` does: embed_backend auto, so the packaged model is served as its
    # export for this CPU (made once by the launcher), under the plain name too
    (default,) = [  # test_jobs may have loaded its fine-tuned model into this stack too
        m
        for m in stack.client().models()
        if m.kind == "embedding" and split_backend(m.id)[0] == "all-MiniLM-L6-v2"
    ]
    assert default.backend == auto_backend(packaged=True)
    assert default.id == f"all-MiniLM-L6-v2?backend={default.backend}" == reply.json()["model"]
    got = np.array([item["embedding"] for item in reply.json()["data"]])
    expected = reference_model.encode(texts, normalize_embeddings=True)
    closeness = 0.98 if default.backend.endswith("int8") else 0.9999
    assert (got * expected).sum(axis=1).min() > closeness


def test_ingest_search_and_evaluate_through_the_cli(
    stack: Stack, scifact_slice: dict, reference_model: SentenceTransformer
) -> None:
    stack.cli("collections", "create", "sci", "--index", "bucket:integer")
    result = stack.cli("ingest", "sci", str(scifact_slice["docs"]), "--batch-size", "50")
    assert f"now holds {N_DOCS} documents" in result.stdout
    again = stack.cli("ingest", "sci", str(scifact_slice["docs"]), "--skip-existing")
    assert f"skipped {N_DOCS}" in again.stdout

    client = stack.client()
    first_qid, query = next(iter(scifact_slice["query_texts"].items()))
    hits = client.search("sci", query, top_k=10).hits
    relevant = set(scifact_slice["judged"][first_qid])
    assert relevant & {h.id for h in hits}, "a relevant abstract should be in the top 10"
    table = stack.cli("search", "sci", query, "-k", "3").stdout
    assert hits[0].id in table

    bucket = client.search("sci", query, top_k=20, filter={"must": [{"key": "bucket", "match": 1}]}).hits
    assert bucket and all(h.metadata["bucket"] == 1 for h in bucket)

    # the platform's retrieval metrics equal an exact in-process search with the same model
    evaluated = stack.cli(
        "eval-retrieval", "--collection", "sci", "--queries", str(scifact_slice["queries"]),
        "--qrels", str(scifact_slice["qrels"]), "--json",
    )  # fmt: skip
    platform = json.loads(evaluated.stdout)
    corpus = scifact_slice["corpus"]
    doc_ids = list(corpus)
    doc_vecs = reference_model.encode([corpus[d] for d in doc_ids], normalize_embeddings=True, batch_size=32)
    qids = list(scifact_slice["query_texts"])
    query_vecs = reference_model.encode(
        [scifact_slice["query_texts"][q] for q in qids], normalize_embeddings=True
    )
    reference = evaluate_run(
        exact_search(query_vecs, doc_vecs, qids, doc_ids, top_k=100), scifact_slice["judged"]
    )
    assert platform["ndcg_at_10"] == pytest.approx(reference.ndcg_at_10, abs=0.5)
    assert platform["recall_at_100"] == pytest.approx(reference.recall_at_100, abs=0.5)
    assert platform["ndcg_at_10"] > 50


def test_bad_input_is_a_clear_error_everywhere(stack: Stack) -> None:
    client = stack.client()
    with pytest.raises(NotFound, match="ghost"):
        client.search("ghost", "anything")
    with pytest.raises(InvalidInput, match="dimensions"):
        client.search("sci", vector=[0.1, 0.2, 0.3])
    reply = httpx.post(f"{stack.url}/v1/embeddings", json={"input": []}, headers=stack.headers)
    assert reply.status_code == 422 and reply.json()["error"]["message"]
    failed = stack.cli("search", "ghost", "x", check=False)
    assert failed.returncode == 1
    assert "ghost" in failed.stderr and "Traceback" not in failed.stderr
    missing = stack.cli("ingest", "sci", "/no/such/file.jsonl", check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_auth_is_on_with_a_local_admin_key_and_scoped_keys(stack: Stack) -> None:
    """`up` runs with auth on: no key is a 401, a `search` key reads but cannot write, a revoked key fails."""
    assert (stack.data_dir / "admin.key").stat().st_mode & 0o077 == 0  # readable by its owner only
    anonymous = httpx.post(f"{stack.url}/v1/embeddings", json={"input": ["x"]})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "unauthorized"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{stack.url}/healthz").status_code == 200  # probes need no key

    created = stack.cli("keys", "create", "--scope", "search", "--name", "reader")
    key = created.stdout.strip()
    assert key.startswith("cp_") and "shown" not in created.stdout  # only the key on stdout
    reader = Client(stack.url, api_key=key)
    assert reader.embed(["a lighthouse"]).data[0].embedding
    with pytest.raises(Forbidden, match="'write'"):
        reader.create_collection("not-allowed")
    listed = stack.cli("keys", "list").stdout
    assert "reader" in listed and key not in listed

    stack.cli("keys", "revoke", key.split("_")[1])
    with pytest.raises(Unauthorized, match="revoked"):
        reader.embed(["a lighthouse"])
    denied = subprocess.run(
        [sys.executable, "-m", "counterpoint", "collections", "list"],
        env={**stack.env, "COUNTERPOINT_API_KEY": key}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert denied.returncode == 1 and "revoked" in denied.stderr and "Traceback" not in denied.stderr


def gateway_port_owner() -> psutil.Process:
    """The process listening on the stack's gateway port."""
    (pid,) = {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == PORTS["GATEWAY_PORT"]
    }
    return psutil.Process(pid)


def test_the_gateway_replica_serves_the_gateway_port_and_gets_it_back_after_a_crash(stack: Stack) -> None:
    """Direct ingress: no Serve proxy between clients and the gateway; a killed replica's successor
    listens on the same port and finds the data its predecessor stored."""
    owner = gateway_port_owner()
    assert owner.cmdline()[0].startswith(GATEWAY_REPLICA)
    client = stack.client()
    before = client.search("sci", "vitamin D and bone health", top_k=3)
    owner.kill()
    owner.wait(timeout=30)
    wait_for(
        lambda: port_open(PORTS["GATEWAY_PORT"]), "a new gateway replica on the gateway port", timeout=120
    )
    successor = gateway_port_owner()
    assert successor.pid != owner.pid and successor.cmdline()[0].startswith(GATEWAY_REPLICA)
    wait_for(lambda: stack.client().health().status == "ok", "the new replica's health", timeout=120)
    assert client.get_collection("sci").count == N_DOCS
    after = client.search("sci", "vitamin D and bone health", top_k=3)
    assert [h.id for h in after.hits] == [h.id for h in before.hits]


def test_restart_keeps_data_and_demo_is_searchable_while_indexing(stack: Stack) -> None:
    """Stop the stack, start it again with the demo on: old data is there, the demo answers early."""
    stop(stack, stack.proc)  # type: ignore[attr-defined]
    assert stack.cli("down").stdout.strip() == "Counterpoint is not running."
    proc = start(stack)
    stack.proc = proc  # type: ignore[attr-defined]
    client = stack.client()
    assert client.get_collection("sci").count == N_DOCS
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline:
        try:
            count = client.get_collection("scifact").count
        except NotFound:
            count = 0
        if count >= 64:
            break
        time.sleep(2)
    assert count >= 64, "the demo collection should fill in the background"
    hits = client.search("scifact", "vitamin D and bone health", top_k=5).hits
    assert len(hits) == 5
    later = client.get_collection("scifact").count
    assert later < 5183, "the demo is still indexing while we search"
    stop(stack, proc)
