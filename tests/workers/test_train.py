"""The training job: the model wrapper and step plan (no Ray), then real Ray Train jobs on a tiny model.

The Ray jobs share one local cluster (2 CPUs), one SQLite MLflow store and one registry database:
(a) a 1-worker job tracked in MLflow, registered and loadable, which is also (b) resumed across
processes: its CLI driver is killed with SIGKILL after the first checkpoint and the job is run again
with the same id; (c) 2 workers with cross-worker negatives and GradCache, which also (b) resume inside
one ``fit``: rank 0 fails once and FailureConfig restarts the group from the last checkpoint.
Two jobs in all, since each start of a Ray Train worker group costs seconds on 2 cores.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from counterpoint.errors import InvalidInput
from counterpoint.workers.config import CROSS_ENCODER_LOSSES, LossConfig, LossName, TrainConfig, parse_config
from counterpoint.workers.data import Example, load_examples
from counterpoint.workers.losses import (
    LOSSES,
    CoSENTLoss,
    InfoNCELoss,
    MatryoshkaLoss,
    UnsupervisedSimCSELoss,
    build_loss,
)
from counterpoint.workers.model import Batch, BiEncoder
from counterpoint.workers.train import StepPlan, resolve_paths
from tests.tiny_models import build_tiny_bi_encoder

REPO_ROOT = Path(__file__).resolve().parents[2]
WORDS = [
    "apple",
    "river",
    "mountain",
    "violin",
    "copper",
    "galaxy",
    "tiger",
    "coffee",
    "pencil",
    "harbor",
    "tulip",
    "engine",
    "marble",
    "falcon",
    "desert",
    "lantern",
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny model, 64 (query, passage) pairs, an STS file and a toy BEIR dir."""
    root = tmp_path_factory.mktemp("train")
    model = build_tiny_bi_encoder(root)
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "\n".join(
            json.dumps(
                {
                    "anchor": f"what about {WORDS[i % 16]} {i}",
                    "positive": f"{WORDS[i % 16]} {WORDS[(i * 7) % 16]} {i}",
                }
            )
            for i in range(64)
        )
    )
    sts = root / "sts.tsv"
    sts.write_text(
        "sentence1\tsentence2\tscore\n"
        + "".join(f"{WORDS[i]} a\t{WORDS[i]} {WORDS[(i + 1) % 16]}\t{i % 5}.0\n" for i in range(16))
    )
    beir = root / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": f"d{i}", "title": w, "text": f"{w} passage {i}"}) for i, w in enumerate(WORDS)
        )
    )
    (beir / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": f"about {w}"}) for i, w in enumerate(WORDS[:6]))
    )
    (beir / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(6))
    )
    return {"root": root, "model": model, "pairs": pairs, "sts": sts, "beir": beir}


def make_config(workspace: dict[str, Any], **overrides: Any) -> TrainConfig:
    raw: dict[str, Any] = {
        "model": str(workspace["model"]),
        "data": {"path": str(workspace["pairs"])},
        "batch_size": 8,
        "lr": 5e-4,
        "max_seq_length": 32,
        "max_steps": 4,
        "report_every": 2,
        "checkpoint_every": 4,
        "experiment": "tests",
        "eval": {"every_steps": 100, "uniformity_sample": 32},
    }
    raw.update(overrides)
    return parse_config(raw)


# --- no Ray: the model wrapper, the loss factory, the step plan -----------------------------------


def test_build_loss_follows_the_config() -> None:
    assert isinstance(build_loss(LossConfig(name="mnrl")), InfoNCELoss)
    assert not build_loss(LossConfig(name="mnrl"), world_size=1).gather_across_workers
    assert build_loss(LossConfig(name="mnrl"), world_size=2).gather_across_workers
    assert not build_loss(
        LossConfig(name="mnrl"), world_size=2, cross_worker_negatives=False
    ).gather_across_workers
    assert isinstance(build_loss(LossConfig(name="simcse")), UnsupervisedSimCSELoss)
    assert isinstance(build_loss(LossConfig(name="cosent")), CoSENTLoss)
    wrapped = build_loss(LossConfig(name="mnrl", matryoshka_dims=[32, 16]))
    assert isinstance(wrapped, MatryoshkaLoss) and wrapped.dims == (32, 16)
    learnable = build_loss(LossConfig(name="mnrl", learnable_temperature=True))
    assert isinstance(learnable.log_scale, torch.nn.Parameter)
    with pytest.raises(ValueError, match="learnable_temperature"):
        build_loss(LossConfig(name="cosent", learnable_temperature=True))


def test_both_model_types_offer_what_the_training_loop_uses() -> None:
    from counterpoint.workers.trainable import MODEL_TYPES, TrainableModel, model_class

    members = [name for name in vars(TrainableModel) if not name.startswith("_")]
    assert {"from_config", "build_evaluator", "compute_loss", "evaluate", "log_model"} <= set(members)
    for model_type in MODEL_TYPES:
        cls = model_class(model_type)
        assert [name for name in members if not hasattr(cls, name)] == [], cls


def test_the_loss_registry_names_every_embedding_loss_of_the_config() -> None:
    assert set(LOSSES) == set(typing.get_args(LossName)) - set(CROSS_ENCODER_LOSSES)
    debiased = LOSSES["debiased"].from_config(LossConfig(name="debiased", tau_plus=0.2, scale=3.0))
    assert debiased.tau_plus == 0.2 and math.isclose(float(debiased.scale), 3.0)


@pytest.fixture(scope="module")
def bi_encoder_config(workspace: dict[str, Any]) -> TrainConfig:
    return make_config(workspace)


@pytest.mark.parametrize(
    ("kind", "loss", "examples"),
    [
        ("pairs", "mnrl", [Example((f"q {w}", f"p {w}")) for w in WORDS[:6]]),
        ("triplets", "simcse_supervised", [Example((f"q {w}", f"p {w}", f"n {w}")) for w in WORDS[:6]]),
        ("sentences", "simcse", [Example((f"s {w}",)) for w in WORDS[:6]]),
        (
            "scored_pairs",
            "cosent",
            [Example((f"a {w}", f"b {w}"), float(i)) for i, w in enumerate(WORDS[:6])],
        ),
    ],
)
@pytest.mark.parametrize("chunk", [None, 4])
def test_compute_loss_dispatches_on_the_example_kind(
    bi_encoder_config: TrainConfig, kind: str, loss: str, examples: list[Example], chunk: int | None
) -> None:
    config = bi_encoder_config.model_copy(update={"loss": LossConfig(name=loss), "gradcache_chunk": chunk})
    model = BiEncoder.from_config(config)
    model.train()
    value = model.compute_loss(Batch.from_examples(kind, examples))  # type: ignore[arg-type]
    value.backward()
    assert value.ndim == 0 and math.isfinite(float(value.detach()))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_gradcache_gives_the_plain_gradients(bi_encoder_config: TrainConfig) -> None:
    examples = [Example((f"q {w}", f"p {w} text")) for w in WORDS[:8]]
    grads = []
    for chunk in (None, 3):
        model = BiEncoder.from_config(bi_encoder_config.model_copy(update={"gradcache_chunk": chunk}))
        model.eval()  # no dropout, so both variants compute the same function
        model.compute_loss(Batch.from_examples("pairs", examples)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, plain in grads[0].items():
        assert torch.allclose(plain, grads[1][name], atol=1e-5), name


def test_simcse_refuses_to_train_without_dropout(bi_encoder_config: TrainConfig) -> None:
    model = BiEncoder.from_config(bi_encoder_config.model_copy(update={"loss": LossConfig(name="simcse")}))
    model.eval()
    with pytest.raises(ValueError, match="dropout"):
        model.compute_loss(Batch.from_examples("sentences", [Example(("a",)), Example(("b",))]))


@pytest.mark.parametrize(
    ("line", "words"), [("{not json", "line 2 is not valid JSON"), ("[1, 2]", "line 2 must be a JSON object")]
)
def test_a_broken_jsonl_line_is_named_by_its_number(tmp_path: Path, line: str, words: str) -> None:
    from counterpoint.workers.data import DataSource, iter_rows

    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"anchor": "a", "positive": "b"}) + "\n" + line + "\n")
    with pytest.raises(InvalidInput, match=words) as caught:
        list(iter_rows(DataSource(path=str(path))))
    assert str(path) in caught.value.message


def test_step_plan_shards_batches_and_is_deterministic() -> None:
    plan = StepPlan(20, 6, world_size=2, seed=3, epochs=2)
    assert plan.steps_per_epoch == 3 and plan.total_steps == 6
    again = StepPlan(20, 6, world_size=2, seed=3, epochs=2)
    for step in range(1, 7):
        shards = [plan.indices(step, rank) for rank in range(2)]
        assert [len(s) for s in shards] == [3, 3]
        assert shards[0] + shards[1] == list(plan.global_batch(step))
        assert shards == [again.indices(step, rank) for rank in range(2)]  # any step, no replay needed
    epoch_one = [i for step in (1, 2, 3) for i in plan.global_batch(step)]
    assert len(set(epoch_one)) == 18  # no example twice within an epoch
    assert list(plan.global_batch(4)) != list(plan.global_batch(1))  # reshuffled per epoch
    assert StepPlan(20, 6, max_steps=10).total_steps == 10


def test_relative_paths_resolve_against_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = TrainConfig.model_validate(
        {
            "data": {"path": "counterpoint/data/scifact", "split": "train"},
            "eval": {"sts": "counterpoint/data/stsb/dev.tsv"},
        }
    )
    resolved = resolve_paths(config)
    assert resolved.data.path == str(REPO_ROOT / "counterpoint/data/scifact")
    assert resolved.eval.sts == str(REPO_ROOT / "counterpoint/data/stsb/dev.tsv")
    assert resolved.model == "all-MiniLM-L6-v2"  # packaged names are left alone


@pytest.mark.parametrize("example", sorted((REPO_ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_validate(example: Path) -> None:
    config = resolve_paths(parse_config(example.read_text(), check_data=False), config_dir=example.parent)
    parse_config(config.model_dump(mode="json"), check_data=True)


def test_params_are_flattened_without_secrets_and_local_artifacts_stay_next_to_the_database(
    tmp_path: Path,
) -> None:
    from counterpoint.infra.tracking import flatten_params, local_artifact_root, redacted, resolve_model_uri

    config = {
        "loss": {"name": "mnrl", "matryoshka_dims": [64, 32]},
        "api_key": "sk-123",
        "nested": {"password": "hunter2", "db": "postgresql://user:pw@host/db"},
    }
    artifact = redacted(config)  # what config.yaml holds
    assert artifact["api_key"] == artifact["nested"]["password"] == "***"
    assert artifact["nested"]["db"] == "postgresql://***@host/db" and artifact["loss"] == config["loss"]
    params = flatten_params(config)
    assert params == {
        "loss.name": "mnrl",
        "loss.matryoshka_dims": "[64, 32]",
        "nested.db": "postgresql://***@host/db",
    }
    assert local_artifact_root(f"sqlite:///{tmp_path}/mlflow.db") == (tmp_path / "mlartifacts").as_uri()
    assert local_artifact_root("http://127.0.0.1:5000") is None
    packaged = resolve_model_uri("all-MiniLM-L6-v2", "http://unused", tmp_path / "cache")
    assert (packaged / "modules.json").is_file()


# --- Ray Train jobs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Test speed-ups, inherited by every process of the cluster ray.init starts: the Train controller
    # polls its workers every 0.5 s instead of 2 s (each fit ends sooner, and the checkpoint snapshot
    # the kill test waits for appears within half a second of the report); no preemption-watcher
    # actor (one process less per fit; it only matters for spot instances) and no Train metrics.
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"
    os.environ["RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"] = "0"
    os.environ["RAY_TRAIN_METRICS_ENABLED"] = "0"
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def stores(workspace: dict[str, Any]) -> dict[str, str]:
    root = workspace["root"]
    return {
        "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "registry_url": f"sqlite:///{root / 'registry.db'}",
    }


def run_job(
    workspace: dict[str, Any], stores: dict[str, str], config: TrainConfig, job_id: str, **kwargs: Any
):
    from counterpoint.workers.train import run_training

    return run_training(
        config,
        job_id=job_id,
        storage_dir=workspace["root"] / "storage",
        tracking_uri=stores["tracking_uri"],
        registry_url=stores["registry_url"],
        **kwargs,
    )


def history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    return sorted((m.step, m.value) for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))


def job_row(stores: dict[str, str], job_id: str):
    from counterpoint.infra.db.registry import Registry

    with Registry.from_url(stores["registry_url"]) as registry:
        return registry.get_job(job_id)


def kill_driver_after_first_checkpoint(
    workspace: dict[str, Any], stores: dict[str, str], config: TrainConfig, job_id: str, ray_address: str
) -> None:
    """Run the CLI entry point as a Ray job driver would, and SIGKILL it once a checkpoint exists."""
    storage = workspace["root"] / "storage"
    config_file = workspace["root"] / f"{job_id}.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    command = [
        sys.executable,
        "-m",
        "counterpoint.workers.train",
        "--config",
        str(config_file),
        "--job-id",
        job_id,
        "--storage",
        str(storage),
        "--tracking-uri",
        stores["tracking_uri"],
        "--registry-url",
        stores["registry_url"],
    ]
    env = {**os.environ, "RAY_ADDRESS": ray_address}  # as the Ray job runtime sets it
    snapshot = (
        storage / job_id / "checkpoint_manager_snapshot.json"
    )  # written once a checkpoint is registered
    log_file = workspace["root"] / f"{job_id}-driver.log"
    with log_file.open("w") as log:  # a file, not a pipe: a full pipe would stall the driver
        driver = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 150
            while not snapshot.exists():
                assert driver.poll() is None, f"driver exited early:\n{log_file.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "no checkpoint within 150 s"
                time.sleep(0.05)
            driver.send_signal(signal.SIGKILL)
        finally:
            if driver.poll() is None:
                driver.kill()
            driver.wait(timeout=30)
    assert driver.returncode == -signal.SIGKILL


def test_one_worker_job_killed_then_resumed_is_tracked_registered_and_loadable(
    ray_cluster: str, workspace: dict[str, Any], stores: dict[str, str]
) -> None:
    """(a) + (b): the CLI driver is killed after its first checkpoint; running the same job id again
    continues from that checkpoint in the same MLflow run, then logs, registers and serves the model."""
    from mlflow import MlflowClient
    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import resolve_model_uri, set_alias

    job_id = "job-killed"
    config = make_config(
        workspace,
        max_steps=6,
        checkpoint_every=2,
        report_every=2,
        register_as="tiny-retriever",
        export={"backends": ["onnx"], "sample": 64},
        eval={
            "sts": str(workspace["sts"]),
            "retrieval": {"path": str(workspace["beir"]), "max_docs": 12},
            "every_steps": 4,
            "uniformity_sample": 32,
        },
    )
    kill_driver_after_first_checkpoint(workspace, stores, config, job_id, ray_cluster)
    state = json.loads((workspace["root"] / "storage" / job_id / "counterpoint_job.json").read_text())
    assert state["status"] == "running"
    first_run_id = state["mlflow_run_id"]
    assert job_row(stores, job_id).status == "running"
    assert job_row(stores, job_id).mlflow_run_id == first_run_id

    result = run_job(workspace, stores, config, job_id)
    assert result["status"] == "succeeded" and result["step"] == 6
    assert result["resumed_from_step"] in (2, 4)  # from the killed driver's checkpoint, not from 0
    assert result["mlflow_run_id"] == first_run_id  # the same run continues
    assert math.isfinite(result["train/loss"])
    for key in (
        "eval/sts_spearman",
        "eval/ndcg_at_10",
        "eval/recall_at_100",
        "eval/alignment",
        "eval/uniformity",
    ):
        assert math.isfinite(result[key]), key

    tracking = stores["tracking_uri"]
    client = MlflowClient(tracking)
    run = client.get_run(first_run_id)
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id], f"tags.`counterpoint.job_id` = '{job_id}'")) == 1
    assert run.data.params["loss.name"] == "mnrl" and run.data.params["batch_size"] == "8"
    assert run.data.params["data.path"] == str(workspace["pairs"])
    assert run.data.tags["counterpoint.resumed_from_step"] == str(result["resumed_from_step"])
    # one continuous history: every step once, although the steps after the checkpoint ran twice
    assert [step for step, _ in history(tracking, first_run_id, "train/loss")] == [2, 4, 6]
    assert [step for step, _ in history(tracking, first_run_id, "train/lr")] == [2, 4, 6]
    assert [step for step, _ in history(tracking, first_run_id, "eval/sts_spearman")] == [0, 4, 6]
    assert [step for step, _ in history(tracking, first_run_id, "eval/uniformity")] == [0, 4, 6]
    assert all(math.isfinite(v) for _, v in history(tracking, first_run_id, "train/loss"))
    assert "config.yaml" in [a.path for a in client.list_artifacts(first_run_id)]
    logged_config = yaml.safe_load(Path(client.download_artifacts(first_run_id, "config.yaml")).read_text())
    assert logged_config["register_as"] == "tiny-retriever"

    version = client.get_model_version("tiny-retriever", result["registered_version"])
    assert version.run_id == first_run_id
    # export: checked against torch, stored with the version (fp32: no loss to speak of)
    assert result["exports"]["onnx"]["status"] == "servable" and abs(result["exports"]["onnx"]["loss"]) < 0.05
    assert version.tags["counterpoint.export.onnx"] == "servable"
    assert "backends/onnx/model.onnx" in [
        a.path for a in client.list_artifacts(first_run_id, "backends/onnx")
    ]
    set_alias("tiny-retriever", "champion", version.version, tracking)
    path = resolve_model_uri("models:/tiny-retriever@champion", tracking, workspace["root"] / "cache")
    embeddings = SentenceTransformer(str(path), device="cpu").encode(["hello there", "general kenobi"])
    assert embeddings.shape == (2, 32)

    row = job_row(stores, job_id)
    assert row.status == "succeeded" and row.mlflow_run_id == first_run_id and row.error is None
    assert row.metrics["step"] == 6 and "train/loss" in row.metrics

    # the same job id once more: already done, the stored result comes back without training
    started = time.perf_counter()
    assert run_job(workspace, stores, config, job_id) == result
    assert time.perf_counter() - started < 5


def test_two_workers_with_cross_worker_negatives_recover_from_a_worker_failure(
    ray_cluster: str, workspace: dict[str, Any], stores: dict[str, str]
) -> None:
    """(b, in-process) + (c): 2 gloo workers, gathered negatives and GradCache; rank 0 raises once at
    step 3, FailureConfig restarts the worker group, which resumes from the step-2 checkpoint."""
    config = make_config(
        workspace,
        workers=2,
        cross_worker_negatives=True,
        gradcache_chunk=2,
        max_steps=6,
        checkpoint_every=2,
        report_every=2,
    )
    result = run_job(workspace, stores, config, "job-two-workers", crash_at_step=3)
    assert (workspace["root"] / "storage" / "job-two-workers" / "crash_injected").exists()  # it did fail
    assert result["status"] == "succeeded" and result["step"] == 6
    assert result["resumed_from_step"] == 2
    assert math.isfinite(result["train/loss"]) and math.isfinite(result["eval/uniformity"])
    steps = [step for step, _ in history(stores["tracking_uri"], result["mlflow_run_id"], "train/loss")]
    assert steps == [2, 4, 6]


def test_hard_negatives_are_mined_once_before_training(workspace: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    from mlflow import MlflowClient

    from counterpoint.workers.train import HARD_NEGATIVES_FILE, mine_hard_negatives

    beir = tmp_path / "beir"
    shutil.copytree(workspace["beir"], beir)
    shutil.copy(beir / "qrels" / "test.tsv", beir / "qrels" / "train.tsv")
    hard = {"model": str(workspace["model"]), "top_k": 5, "max_score_ratio": None, "max_seq_length": 32}
    config = make_config(
        workspace, batch_size=2, data={"path": str(beir), "format": "beir", "hard_negatives": hard}
    )
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from counterpoint.infra.tracking import get_or_create_experiment

    mlflow_client = MlflowClient(tracking)  # artifacts next to the database, not in ./mlruns
    run_id = mlflow_client.create_run(get_or_create_experiment("mining", tracking)).info.run_id

    mined = mine_hard_negatives(config, tmp_path / "job", tracking, run_id)
    assert (mined.data.kind, mined.data.hard_negatives) == ("triplets", None)
    kind, examples = load_examples(mined.data)
    assert kind == "triplets" and len(examples) == 6
    corpus = {json.loads(line)["_id"]: json.loads(line) for line in (beir / "corpus.jsonl").open()}
    for example, i in zip(examples, range(6), strict=True):
        assert example.texts[1] == f"{corpus[f'd{i}']['title']} {corpus[f'd{i}']['text']}"
        assert example.texts[2] != example.texts[1]  # never the positive itself
    metrics = mlflow_client.get_run(run_id).data.metrics
    assert metrics["mining/triplets"] == 6 and metrics["mining/queries"] == 6
    artifacts = {a.path for a in mlflow_client.list_artifacts(run_id)}
    assert {HARD_NEGATIVES_FILE, "mining_report.json"} <= artifacts
    stamp = (tmp_path / "job" / HARD_NEGATIVES_FILE).stat().st_mtime_ns
    mine_hard_negatives(config, tmp_path / "job", tracking, run_id)  # a resumed job reuses the file
    assert (tmp_path / "job" / HARD_NEGATIVES_FILE).stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"path": "PAIRS", "hard_negatives": {}}, ("hard_negatives", "BEIR")),
        ({"path": "BEIR", "format": "beir", "split": "test", "hard_negatives": {}}, ("test",)),
        ({"path": "BEIR", "format": "beir", "hard_negatives": {"top_k": 0}}, ("top_k",)),
    ],
)
def test_bad_hard_negative_configs(workspace: dict[str, Any], data: dict, words: tuple[str, ...]) -> None:
    data = {k: str(workspace[v.lower()]) if v in ("PAIRS", "BEIR") else v for k, v in data.items()}
    with pytest.raises(InvalidInput) as caught:
        make_config(workspace, data=data)
    assert all(w in caught.value.message for w in words), caught.value.message


# --- cross-encoder (reranker) jobs -----------------------------------------------------------------


def triplets_file(workspace: dict[str, Any]) -> Path:
    path = workspace["root"] / "triplets.jsonl"
    if not path.exists():
        rows = [
            {
                "anchor": f"about {WORDS[i % 6]}",
                "positive": f"{WORDS[i % 6]} passage {i % 6}",
                "negative": f"{WORDS[(i + 3) % 16]} passage {(i + 3) % 16}",
            }
            for i in range(16)
        ]
        path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_cross_encoder_losses_learn_the_triplets(workspace: dict[str, Any], loss: str) -> None:
    from counterpoint.workers.cross_encoder import CrossEncoderModel

    torch.manual_seed(0)
    config = make_config(
        workspace,
        model_type="cross-encoder",
        loss={"name": loss},
        data={"path": str(triplets_file(workspace))},
    )
    model = CrossEncoderModel.from_config(config)
    model.eval()  # dropout off: the tiny model then overfits eight triplets deterministically
    examples = [
        Example((f"about {w}", f"{w} passage", f"{WORDS[8 + i]} passage")) for i, w in enumerate(WORDS[:8])
    ]
    batch = Batch.from_examples("triplets", examples)
    optimizer = torch.optim.AdamW(model.parameter_groups(0.0), lr=3e-3)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        value = model.compute_loss(batch)
        value.backward()
        optimizer.step()
        losses.append(float(value.detach()))
    assert losses[-1] < 0.8 * losses[0], losses
    model.eval()
    with torch.no_grad():
        pos = model.logits(batch.columns[0], batch.columns[1])
        neg = model.logits(batch.columns[0], batch.columns[2])
    assert float((pos > neg).float().mean()) >= 0.75, (pos, neg)
    with pytest.raises(ValueError, match="triplets"):
        model.compute_loss(Batch.from_examples("pairs", [Example(("a", "b"))]))


@pytest.mark.parametrize(("loss", "in_batch"), [("listwise", False), ("listwise", True), ("bce", True)])
def test_cross_encoder_losses_score_each_query_against_its_group_of_negatives(
    workspace: dict[str, Any], loss: str, in_batch: bool
) -> None:
    """Rows with k negatives: the loss is the formula over exactly the pairs the docstring names."""
    from counterpoint.workers.cross_encoder import CrossEncoderModel

    torch.manual_seed(0)
    config = make_config(
        workspace,
        model_type="cross-encoder",
        loss={"name": loss, "in_batch_negatives": in_batch},
        data={"path": str(triplets_file(workspace))},
    )
    model = CrossEncoderModel.from_config(config)
    model.eval()
    rows = [
        (f"about {w}", f"{w} passage", f"{WORDS[6 + i]} text", f"{WORDS[12 - i]} words")
        for i, w in enumerate(WORDS[:3])
    ]
    batch = Batch.from_examples("triplets", [Example(r) for r in rows])
    with torch.no_grad():
        value = float(model.compute_loss(batch))
        own = torch.stack([model.logits([q] * 3, [p, n1, n2]) for q, p, n1, n2 in rows])  # (3, 1 + k)
        every = [d for col in (1, 2, 3) for d in [r[col] for r in rows]]
        full = torch.stack([model.logits([r[0]] * len(every), every) for r in rows])  # (3, 9)
    if loss == "bce":
        labels = torch.tensor([[1.0, 0.0, 0.0]] * 3)
        expected = float(torch.nn.functional.binary_cross_entropy_with_logits(own, labels))
    elif in_batch:
        expected = float(torch.nn.functional.cross_entropy(full, torch.arange(3)))
    else:
        expected = float(torch.nn.functional.cross_entropy(own, torch.zeros(3, dtype=torch.long)))
    assert value == pytest.approx(expected, rel=1e-5)


def test_bi_encoder_reads_several_negatives_per_row_as_extra_candidates(
    bi_encoder_config: TrainConfig,
) -> None:
    model = BiEncoder.from_config(bi_encoder_config)
    model.eval()
    rows = [(f"q {w}", f"p {w}", f"n {w}", f"m {w}") for w in WORDS[:4]]
    with torch.no_grad():
        value = float(model.compute_loss(Batch.from_examples("triplets", [Example(r) for r in rows])))
        anchors, positives = model.encode([r[0] for r in rows]), model.encode([r[1] for r in rows])
        negatives = model.encode([t for r in rows for t in r[2:]])  # row i*k + j = negative j of anchor i
        expected = float(model.loss(anchors, positives, negatives))
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"model_type": "cross-encoder"}, ("bce or listwise",)),
        ({"loss": {"name": "bce"}}, ("bce or listwise",)),
        ({"model_type": "cross-encoder", "loss": {"name": "bce"}, "gradcache_chunk": 2}, ("bi-encoders",)),
        ({"export": {"backends": ["onnx"]}}, ("export needs register_as",)),
        ({"register_as": "m", "export": {"backends": ["torch"]}}, ("export.backends.0",)),
        ({"register_as": "m", "export": {"backends": ["onnx"], "tolerance": -1}}, ("export.tolerance",)),
    ],
)
def test_cross_encoder_config_mistakes(
    workspace: dict[str, Any], overrides: dict, words: tuple[str, ...]
) -> None:
    data = {"data": {"path": str(triplets_file(workspace))}}
    with pytest.raises(InvalidInput) as caught:
        make_config(workspace, **data, **overrides)
    assert all(w in caught.value.message for w in words), caught.value.message


def test_cross_encoder_job_reranks_registers_and_serves(
    ray_cluster: str, workspace: dict[str, Any], stores: dict[str, str], tmp_path: Path
) -> None:
    """A reranker job on Ray Train: evaluated by reranking a first stage, logged, registered, and
    loadable by the rerank service's loader from the registry."""
    import shutil

    from counterpoint.models.reranker import TextReranker
    from counterpoint.services.rerank.backends import reranker_loader
    from counterpoint.settings import Settings

    beir = workspace["beir"]
    config = make_config(
        workspace,
        model_type="cross-encoder",
        loss={"name": "listwise"},
        data={"path": str(triplets_file(workspace))},
        batch_size=4,
        eval={
            "rerank": {
                "path": str(beir),
                "retriever": str(workspace["model"]),
                "top_k": 5,
                "fusion_weights": [0, 0.5, 1],
            },
            "every_steps": 100,
        },
        register_as="tiny-reranker",
    )
    result = run_job(workspace, stores, config, "job-cross-encoder")
    assert result["status"] == "succeeded" and result["step"] == 4
    for key in ("eval/rerank_ndcg_at_10", "eval/rerank_recall_at_100", "eval/rerank_mrr_at_10"):
        assert 0 <= result[key] <= 100
    for metric in ("ndcg_at_10", "mrr_at_10"):  # weight 0: the reranker's order; 1: the first stage's
        assert result[f"eval/fused_w0_{metric}"] == pytest.approx(result[f"eval/rerank_{metric}"])
        assert result[f"eval/fused_w1_{metric}"] == pytest.approx(result[f"eval/first_stage_{metric}"])
        assert 0 <= result[f"eval/fused_w0.5_{metric}"] <= 100
    assert [
        s for s, _ in history(stores["tracking_uri"], result["mlflow_run_id"], "eval/rerank_ndcg_at_10")
    ] == [0, 4]
    assert (
        result["model_uri"].startswith("runs:/")
        and result["registered_model_uri"] == "models:/tiny-reranker/1"
    )
    import asyncio

    from counterpoint.services.gateway.models import ModelRegistryService

    settings = Settings(
        data_dir=tmp_path / "serve", mlflow_tracking_uri=stores["tracking_uri"], rerank_max_length=64
    )
    registered = asyncio.run(ModelRegistryService(settings).get("tiny-reranker"))
    assert registered.versions[0].model_type == "cross-encoder"  # the UI deploys it to the rerank service
    served = reranker_loader(settings)("models:/tiny-reranker/1")
    assert isinstance(served, TextReranker)
    scores = served.score("about alpha", ["alpha passage 0", "kappa passage 9"]).scores
    assert scores.shape == (2,) and np.isfinite(scores).all()
    shutil.rmtree(tmp_path / "serve", ignore_errors=True)


@pytest.mark.parametrize("model_type", ["bi-encoder", "cross-encoder"])
def test_attention_dropout_is_set_on_the_attention_blocks_only(
    workspace: dict[str, Any], model_type: str
) -> None:
    from counterpoint.workers.train import build_model

    cross = model_type == "cross-encoder"
    config = make_config(
        workspace,
        model_type=model_type,
        loss={"name": "listwise" if cross else "mnrl"},
        data={"path": str(triplets_file(workspace))},
        attention_dropout=0.0,
    )
    module = build_model(config, 1, "cpu").model
    dropouts = {n: m.p for n, m in module.named_modules() if isinstance(m, torch.nn.Dropout)}
    attention = {n: p for n, p in dropouts.items() if ".attention.self." in n}
    assert attention and set(attention.values()) == {0.0}
    assert {p for n, p in dropouts.items() if n not in attention} == {0.1}  # hidden dropout stays
    default = build_model(config.model_copy(update={"attention_dropout": None}), 1, "cpu").model
    assert {
        m.p for n, m in default.named_modules() if ".attention.self." in n and isinstance(m, torch.nn.Dropout)
    } == {0.1}


def test_head_lr_gives_the_fresh_classification_head_its_own_learning_rate(workspace: dict[str, Any]) -> None:
    from counterpoint.workers.cross_encoder import CrossEncoderModel

    config = make_config(
        workspace,
        model_type="cross-encoder",
        loss={"name": "listwise"},
        data={"path": str(triplets_file(workspace))},
        head_lr=1e-2,
    )
    model = CrossEncoderModel.from_config(config)
    groups = model.parameter_groups(0.01)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each parameter exactly once
    head = {id(p) for m in model.head() for p in m.parameters()}
    assert head and all((g.get("lr") == 1e-2) == (id(g["params"][0]) in head) for g in groups if g["params"])
    optimizer = torch.optim.AdamW(groups, lr=config.lr)
    assert {g["lr"] for g in optimizer.param_groups} == {config.lr, 1e-2}
    with pytest.raises(InvalidInput, match="head_lr applies to cross-encoders"):
        make_config(workspace, head_lr=1e-2)


def _register(tracking_uri: str, name: str, model_dir: Path) -> int:
    """Log the sentence-transformers model in ``model_dir`` to a run and register it; its version."""
    import mlflow
    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import get_or_create_experiment, log_sentence_transformer, register_model

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=get_or_create_experiment("registry-tests", tracking_uri)):
        info = log_sentence_transformer(SentenceTransformer(str(model_dir), device="cpu"), name="model")
    return int(register_model(info.model_uri, name, tracking_uri))


def test_registry_models_in_a_config_are_downloaded_before_the_job_uses_them(
    workspace: dict[str, Any], tmp_path: Path
) -> None:
    """A reranker job may mine and evaluate with `models:/NAME@alias` (the bi-encoder the loop promoted)."""
    import shutil

    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import set_alias
    from counterpoint.workers.train import resolve_registry_models

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    set_alias("tiny-bi", "champion", _register(uri, "tiny-bi", workspace["model"]), uri)
    beir = shutil.copytree(workspace["beir"], tmp_path / "beir")
    shutil.copy(beir / "qrels" / "test.tsv", beir / "qrels" / "train.tsv")
    config = make_config(
        workspace,
        model_type="cross-encoder",
        loss={"name": "listwise"},
        data={"path": str(beir), "hard_negatives": {"model": "models:/tiny-bi@champion"}},
        eval={"rerank": {"path": str(workspace["beir"]), "retriever": "models:/tiny-bi@champion"}},
    )
    resolved = resolve_registry_models(config, uri, tmp_path / "cache")
    mined, retriever = resolved.data.hard_negatives.model, resolved.eval.rerank.retriever  # type: ignore[union-attr]
    assert mined == retriever and Path(retriever).is_relative_to(tmp_path / "cache")
    assert SentenceTransformer(retriever, device="cpu").encode(["alpha"]).shape[0] == 1
    assert resolved.model == config.model  # a local base model stays as it was
    missing = config.model_copy(
        update={
            "eval": config.eval.model_copy(
                update={
                    "rerank": config.eval.rerank.model_copy(update={"retriever": "models:/nope@champion"})
                }
            )
        }  # type: ignore[union-attr]
    )
    with pytest.raises(InvalidInput, match="eval.rerank.retriever.*does not exist"):
        resolve_registry_models(missing, uri, tmp_path / "cache")


def test_a_job_keeps_the_versions_its_aliases_named_when_it_resumes(
    workspace: dict[str, Any], tmp_path: Path
) -> None:
    """The pins a job records (field -> models:/NAME/VERSION) win over an alias moved meanwhile."""
    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import set_alias
    from counterpoint.workers.train import read_state, resolve_registry_models, write_state

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = [  # two different models under one name
        _register(uri, "tiny-pin", build_tiny_bi_encoder(tmp_path / f"v{seed}", seed=seed)) for seed in (1, 2)
    ]
    set_alias("tiny-pin", "champion", versions[0], uri)
    config = make_config(workspace, model="models:/tiny-pin@champion")

    pins: dict[str, str] = {}
    first = resolve_registry_models(config, uri, tmp_path / "cache", pins)
    assert pins == {"model": f"models:/tiny-pin/{versions[0]}"}
    set_alias("tiny-pin", "champion", versions[1], uri)  # promoted while the job was down
    resumed = resolve_registry_models(config, uri, tmp_path / "cache", dict(pins))
    fresh = resolve_registry_models(config, uri, tmp_path / "cache")
    assert resumed.model == first.model != fresh.model
    probe = ["alpha beta"]
    assert np.allclose(
        SentenceTransformer(resumed.model, device="cpu").encode(probe),
        SentenceTransformer(first.model, device="cpu").encode(probe),
    )

    # the state file keeps the pins through the status writes that follow
    write_state(tmp_path / "job", job_id="j", status="running", models=pins)
    write_state(tmp_path / "job", status="failed", error="boom")
    assert read_state(tmp_path / "job") == {
        "job_id": "j",
        "status": "failed",
        "models": pins,
        "error": "boom",
    }


def test_a_worker_trains_on_its_node_s_cpus_not_only_what_it_reserved() -> None:
    from counterpoint.workers.train.cluster import worker_threads

    assert worker_threads(1.0, 2.0, 1) == 2  # the local stack: Serve holds a CPU it mostly leaves idle
    assert worker_threads(1.0, 2.0, 2) == 1  # two workers of the job on one 2-CPU node
    assert worker_threads(4.0, 2.0, 1) == 4  # never fewer than reserved
    assert worker_threads(0.5, 1.0, 1) == 1 and worker_threads(None, 0.0, 0) == 1
