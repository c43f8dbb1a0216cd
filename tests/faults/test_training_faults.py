"""Training jobs under faults: a Ray Train worker SIGKILLed mid-epoch, the MLflow server killed mid-job.

Both run real jobs on the tiny model (64 pairs, batch 8: 8 steps an epoch, 12 steps, a checkpoint
every 2) through `run_training`, the function the job's driver runs. (a) the worker group restarts
from the last checkpoint within the same ``fit``, and the MLflow run keeps one history; (c) training
goes on while MLflow is down (metrics buffered, kept in the checkpoints), the job then fails saying
MLflow is unreachable, the registry row says so consistently, and resuming the job once MLflow is
back finishes it in the same run with no metric point missing.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from counterpoint.workers.config import TrainConfig, parse_config
from tests.faults.conftest import free_port, ray_processes, wait_for

pytestmark = pytest.mark.faults

WORDS = ["apple", "river", "mountain", "violin", "copper", "galaxy", "tiger", "coffee"]
STEPS, EVERY, STEPS_PER_EPOCH = 12, 2, 8


def write_pairs(path: Path) -> Path:
    """64 (anchor, positive) pairs over 8 words: 8 steps an epoch at batch 8."""
    rows = [
        {"anchor": f"what about {WORDS[i % 8]} {i}", "positive": f"{WORDS[i % 8]} {WORDS[(i * 3) % 8]} {i}"}
        for i in range(64)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pairs(tmp_path_factory.mktemp("fault-data") / "pairs.jsonl")


def job_config(model: Path, pairs: Path, **overrides: Any) -> TrainConfig:
    raw: dict[str, Any] = {
        "model": str(model),
        "data": {"path": str(pairs)},
        "batch_size": 8,
        "lr": 5e-4,
        "max_seq_length": 32,
        "max_steps": STEPS,
        "report_every": EVERY,
        "checkpoint_every": EVERY,
        "experiment": "faults",
        "eval": {"every_steps": 100, "uniformity_sample": 32},
    }
    raw.update(overrides)
    return parse_config(raw)


class JobThread(threading.Thread):
    """`run_training` in a thread, so the test can break things while it runs."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.kwargs = kwargs
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        from counterpoint.workers.train import run_training

        try:
            self.result = run_training(**self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc


def first_checkpoint(storage: Path, job_id: str) -> Path:
    """Ray Train writes this snapshot once it has registered a reported checkpoint."""
    return storage / job_id / "checkpoint_manager_snapshot.json"


def steps(tracking_uri: str, run_id: str, key: str) -> list[int]:
    from mlflow import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, key))


def job_row(registry_url: str, job_id: str) -> Any:
    from counterpoint.infra.db.registry import Registry

    with Registry.from_url(registry_url) as registry:
        return registry.get_job(job_id)


def runs_of(tracking_uri: str, job_id: str) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("faults")
    return client.search_runs([experiment.experiment_id], f"tags.`counterpoint.job_id` = '{job_id}'")


def test_a_worker_killed_mid_epoch_resumes_from_its_checkpoint_in_the_same_run(
    ray_cluster: str, tiny_model: Path, pairs: Path, tmp_path: Path
) -> None:
    storage = tmp_path / "storage"
    tracking, registry = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'registry.db'}"
    job = JobThread(
        config=job_config(tiny_model, pairs),
        job_id="job-worker-killed",
        storage_dir=storage,
        tracking_uri=tracking,
        registry_url=registry,
    )
    job.start()
    wait_for(
        lambda: first_checkpoint(storage, "job-worker-killed").exists() or not job.is_alive(), "a checkpoint"
    )
    assert job.is_alive(), f"the job ended before a worker could be killed: {job.error or job.result}"
    workers = ray_processes("ray::RayTrainWorker")
    assert len(workers) == 1, workers
    killed = workers[0].pid
    os.kill(killed, signal.SIGKILL)
    job.join(timeout=300)
    assert not job.is_alive(), "the job did not finish after its worker was killed"
    assert job.error is None, f"the job failed instead of resuming: {job.error}"

    result = job.result
    assert result is not None and result["status"] == "succeeded" and result["step"] == STEPS
    resumed = result["resumed_from_step"]
    assert resumed % EVERY == 0 and 2 <= resumed < STEPS_PER_EPOCH  # a checkpoint in the first epoch
    assert not any(p.pid == killed for p in ray_processes("ray::RayTrainWorker"))
    assert math.isfinite(result["train/loss"]) and math.isfinite(result["eval/uniformity"])

    run_id = result["mlflow_run_id"]
    runs = runs_of(tracking, "job-worker-killed")
    assert [r.info.run_id for r in runs] == [run_id]  # one run, not one per attempt
    assert runs[0].info.status == "FINISHED"
    assert runs[0].data.tags["counterpoint.resumed_from_step"] == str(resumed)
    # one continuous history: every report once, those before the checkpoint kept, those after it
    # (which the killed attempt may have logged too) not repeated
    expected = list(range(EVERY, STEPS + 1, EVERY))
    assert steps(tracking, run_id, "train/loss") == expected
    assert steps(tracking, run_id, "train/lr") == expected
    assert steps(tracking, run_id, "train/resumed_from_step") == [resumed]
    row = job_row(registry, "job-worker-killed")
    assert (row.status, row.mlflow_run_id, row.error) == ("succeeded", run_id, None)
    assert row.metrics["step"] == STEPS


class MlflowServer:
    """A real `mlflow server` on a fixed port and store, which the test can kill and start again."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "mlflow.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                "--artifacts-destination", str(self.root / "artifacts"),
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

        def healthy() -> bool:
            assert self.proc is not None and self.proc.poll() is None, (self.root / "mlflow.log").read_text()
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, "the MLflow server", timeout=120, every=0.25)

    def kill(self) -> None:
        """SIGKILL the server and its workers (its own process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_mlflow_killed_mid_job_fails_clearly_then_resume_finishes_the_same_run(
    ray_cluster: str, tiny_model: Path, pairs: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    from counterpoint.infra.db.registry import Registry

    storage, job_id = tmp_path / "storage", "job-mlflow-killed"
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    config = job_config(tiny_model, pairs, max_failures=0)  # one attempt: its error is the job's
    common = {
        "config": config,
        "job_id": job_id,
        "storage_dir": storage,
        "tracking_uri": mlflow_server.url,
        "registry_url": registry,
        "tracking_wait_s": 2.0,
    }
    job = JobThread(**common)
    job.start()
    wait_for(lambda: first_checkpoint(storage, job_id).exists() or not job.is_alive(), "a checkpoint")
    assert job.is_alive(), f"the job ended before MLflow could be killed: {job.error or job.result}"
    mlflow_server.kill()
    job.join(timeout=300)
    assert not job.is_alive(), "the job hung after MLflow was killed"

    # it failed, saying why, and left consistent records behind
    assert job.error is not None and job.result is None
    row = job_row(registry, job_id)
    assert row.status == "failed" and row.error is not None
    assert f"MLflow at {mlflow_server.url} is unreachable" in row.error, row.error
    assert "Traceback" not in row.error.splitlines()[0]
    run_id = row.mlflow_run_id
    assert run_id is not None
    assert row.metrics["step"] == STEPS  # training went on without MLflow: buffered, not blocked
    state = json.loads((storage / job_id / "counterpoint_job.json").read_text())
    assert (state["status"], state["mlflow_run_id"]) == ("failed", run_id)

    # MLflow back (same store): resuming the job finishes it in the same run, nothing missing
    mlflow_server.start()
    with Registry.from_url(registry) as reg:
        reg.reopen_job(job_id)  # what POST /v1/jobs/{id}/resume does before it resubmits the driver
    resumed = JobThread(**common)
    resumed.run()
    assert resumed.error is None, f"the resumed job failed: {resumed.error}"
    result = resumed.result
    assert result is not None and result["status"] == "succeeded" and result["mlflow_run_id"] == run_id
    assert result["resumed_from_step"] == STEPS and result["model_uri"]
    runs = runs_of(mlflow_server.url, job_id)
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    # the points logged while MLflow was down were kept in the checkpoints and sent now
    assert steps(mlflow_server.url, run_id, "train/loss") == list(range(EVERY, STEPS + 1, EVERY))
    assert steps(mlflow_server.url, run_id, "eval/uniformity") == [0, STEPS]  # base model, final
    row = job_row(registry, job_id)
    assert (row.status, row.mlflow_run_id, row.error) == ("succeeded", run_id, None)
