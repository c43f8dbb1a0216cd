"""A training job submitted through the real gateway runs on Ray, is tracked in MLflow and registered."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import mlflow
import pytest

from counterpoint.client import Client
from counterpoint.errors import InvalidInput
from tests.e2e.conftest import PORTS, Stack

pytestmark = pytest.mark.e2e

CONFIG = """
name: e2e-smoke
model: all-MiniLM-L6-v2
data:
  path: {data}
  limit: 16
batch_size: 4
max_steps: 2
max_seq_length: 32
report_every: 1
checkpoint_every: 2
eval:
  every_steps: 100
register_as: e2e-smoke-model
"""


def test_train_job_through_the_gateway(stack: Stack, tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[3] / "counterpoint" / "data" / "scifact"
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG.format(data=data))
    result = stack.cli("train", str(config), "--follow", timeout=600)
    assert "succeeded" in result.stdout, result.stdout + result.stderr

    job = stack.client().list_jobs()[0]
    assert job.status == "succeeded" and job.mlflow_run_id
    assert job.metrics["step"] == 2 and "train/loss" in job.metrics

    tracking = mlflow.tracking.MlflowClient(f"http://127.0.0.1:{PORTS['MLFLOW_PORT']}")
    run = tracking.get_run(job.mlflow_run_id)
    assert run.data.params["batch_size"] == "4"
    assert [m.step for m in tracking.get_metric_history(job.mlflow_run_id, "train/loss")] == [1, 2]
    assert tracking.get_registered_model("e2e-smoke-model").latest_versions
    shown = json.loads(stack.cli("jobs", "show", job.id).stdout)
    assert shown["status"] == "succeeded"
    assert stack.cli("jobs", "resume", job.id, check=False).returncode == 1  # succeeded jobs stay done

    # The registered model goes into service: champion alias, deploy, embed, a collection on it.
    cp = stack.client()
    version = job.metrics["registered_version"]
    assert "champion" in stack.cli("models", "alias", "e2e-smoke-model", version).stdout
    listed = json.loads(stack.cli("models", "registered", "e2e-smoke-model", "--json").stdout)
    assert listed[0]["aliases"] == {"champion": version}
    assert listed[0]["versions"][0]["uri"] == f"models:/e2e-smoke-model/{version}"
    assert "ndcg_at_10" not in listed[0]["versions"][0]["metrics"]  # this job evaluated no retrieval
    assert "uniformity" in listed[0]["versions"][0]["metrics"]
    deployed = stack.cli("models", "deploy", "models:/e2e-smoke-model@champion").stdout
    assert f"models:/e2e-smoke-model/{version}" in deployed
    reply = cp.embed(["a fine-tuned model answers"], model="models:/e2e-smoke-model@champion")
    assert reply.model == f"models:/e2e-smoke-model/{version}" and len(reply.data[0].embedding) == 384
    assert f"models:/e2e-smoke-model/{version}" in {m.id for m in cp.models()}
    info = cp.create_collection("tuned", model="models:/e2e-smoke-model@champion")
    assert info.model == f"models:/e2e-smoke-model/{version}"
    cp.ingest("tuned", [{"id": "a", "text": "alpha particles"}, {"id": "b", "text": "bread recipes"}])
    assert cp.search("tuned", "alpha particles", top_k=1).hits[0].id == "a"
    missing = stack.cli("embed", "x", "--model", "models:/e2e-smoke-model@nope", check=False)
    assert missing.returncode == 1 and "nope" in missing.stderr and "Traceback" not in missing.stderr

    # Re-index a collection of the base model onto the fine-tuned one while searches run.
    cp.create_collection("plain")
    cp.ingest("plain", [{"id": f"p{i}", "text": f"passage {i} on topic {i % 5}"} for i in range(60)])
    errors: list[str] = []
    answered = [0]
    stop = threading.Event()

    # The searcher has its own read key and paces itself: the stack runs with the default rate limit
    # per key (50/second), which a tight loop on the CLI's admin key would spend for the CLI too.
    read_key = cp.create_key("e2e-searcher", ["read"]).key

    def search_loop() -> None:
        with Client(stack.url, api_key=read_key) as searcher:
            while not stop.is_set():
                try:
                    searcher.search("plain", "passage on topic 3", top_k=5)
                    answered[0] += 1
                except Exception as exc:  # noqa: BLE001 - every error is a failure of the test
                    errors.append(repr(exc))
                stop.wait(0.05)

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        result = stack.cli("reindex", "plain", "--model", "models:/e2e-smoke-model@champion", timeout=300)
    finally:
        stop.set()
        thread.join(30)
    assert errors == [] and answered[0] > 0, errors[:3]
    assert f"now uses models:/e2e-smoke-model/{version}" in " ".join(result.stdout.split()), result.stdout
    info = cp.get_collection("plain")
    assert info.model == f"models:/e2e-smoke-model/{version}" and info.count == 60 and len(info.previous) == 1
    assert "deleted 1" in stack.cli("collections", "prune", "plain").stdout


def test_bad_config_is_rejected_before_submission(stack: Stack, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("name: bad\ndata:\n  path: /no/such/data.jsonl\nlr: -1\n")
    with pytest.raises(InvalidInput, match="lr"):
        stack.client().submit_job(config)
    failed = stack.cli("train", str(config), check=False)
    assert failed.returncode == 1 and "lr" in failed.stderr and "Traceback" not in failed.stderr


def test_mine_hard_negatives_from_a_live_collection(stack: Stack, tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    topics = ["lighthouses", "bread", "volcanoes", "bicycles", "glaciers", "violins"]
    docs = [
        {"_id": f"d{i}", "title": t, "text": f"A passage about {t}, number {i}."}
        for i, t in enumerate(topics)
    ]
    (beir / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (beir / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": f"tell me about {t}"}) for i, t in enumerate(topics))
    )
    (beir / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(len(topics)))
    )
    cp = stack.client()
    cp.create_collection("minable")
    cp.ingest("minable", [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs])
    out = tmp_path / "triplets.jsonl"
    args = ["mine", "--collection", "minable", "--beir", str(beir), "--top-k", "4", "--out", str(out)]
    result = stack.cli(*args, "--max-score-ratio", "1.0")
    assert "wrote 6 triplets" in " ".join(result.stdout.split()), result.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r["negative"] != r["positive"] for r in rows) and len(rows) == 6
    groups = tmp_path / "groups.jsonl"
    stack.cli(*args[:-1], str(groups), "--max-score-ratio", "1.0", "--negatives", "3")
    for row in (json.loads(line) for line in groups.read_text().splitlines()):
        negatives = [row["negative"], row["negative_2"], row["negative_3"]]
        assert len(set(negatives)) == 3 and row["positive"] not in negatives

    cp.create_collection("unrelated")
    cp.ingest("unrelated", [{"id": f"x{i}", "text": f"unrelated text {i}"} for i in range(6)])
    args[2] = "unrelated"
    failed = stack.cli(*args, check=False)
    assert failed.returncode == 1 and "none of the train queries' positives" in " ".join(
        failed.stderr.split()
    )
    assert "Traceback" not in failed.stderr
