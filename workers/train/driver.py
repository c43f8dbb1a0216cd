"""The Ray Train driver: :func:`run_training` runs (or resumes) one job with a ``TorchTrainer``.

It creates or re-joins the job's MLflow run, pins and downloads registry models, mines hard
negatives when asked, runs the trainer with ``RunConfig(name=job_id, storage_path=storage_dir)``
and ``FailureConfig(config.max_failures)``, and keeps the state file and the registry row current
(a cancelled job stays cancelled). Imports: this package's lower modules; Ray, MLflow lazily.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from counterpoint.errors import InvalidInput
from counterpoint.workers.config import TrainConfig
from counterpoint.workers.data import iter_examples
from counterpoint.workers.train.checkpoints import CHECKPOINTS_KEPT
from counterpoint.workers.train.cluster import default_cpus_per_worker
from counterpoint.workers.train.job_state import (
    ensure_job_row,
    read_state,
    registry_update,
    was_cancelled,
    write_state,
)
from counterpoint.workers.train.loop import train_loop_per_worker
from counterpoint.workers.train.mining_step import mine_hard_negatives
from counterpoint.workers.train.resolution import resolve_paths, resolve_registry_models
from counterpoint.workers.train.tracking_run import failure_text, job_mlflow_run

log = logging.getLogger("counterpoint.workers.train")


def check_enough_examples(config: TrainConfig) -> None:
    """Fail in the driver (not after three worker retries) when the data cannot fill one batch."""
    count = 0
    for count, _ in enumerate(iter_examples(config.data), start=1):  # noqa: B007
        if count >= config.batch_size:
            return
    raise InvalidInput(f"data.path holds {count} examples, fewer than batch_size={config.batch_size}")


def run_training(
    config: TrainConfig,
    *,
    job_id: str,
    storage_dir: Path,
    tracking_uri: str,
    registry_url: str | None = None,
    cpus_per_worker: float | None = None,
    crash_at_step: int | None = None,
    tracking_wait_s: float | None = None,
) -> dict[str, Any]:
    """Run (or resume) training job ``job_id``; returns the final metrics and the model URI.

    Ray must be initialised (the CLI does it). ``storage_dir/job_id`` holds the checkpoints and the
    job's MLflow run id; a second call with the same ``job_id`` continues from the last checkpoint in
    the same MLflow run, and a call for a job that already succeeded returns its stored result.
    ``crash_at_step`` is a testing aid: rank 0 raises once at that step (FailureConfig retries it).
    ``tracking_wait_s`` (default: setting train_tracking_wait_s) bounds how long the end of the job
    waits for an unreachable MLflow server.

    Registry row (when ``registry_url``): ``running`` with ``mlflow_run_id``, metrics updated at every
    report, then ``succeeded`` with the final metrics, or ``failed`` with the error text.
    """
    from counterpoint.infra.tracking import client

    storage_dir = Path(storage_dir).expanduser().resolve()
    job_dir = storage_dir / job_id
    state = read_state(job_dir)
    if state.get("status") == "succeeded" and "result" in state:
        return dict(state["result"])
    config = resolve_paths(config)
    if config.data.hard_negatives is None:
        check_enough_examples(config)

    stored_run_id = state.get("mlflow_run_id")
    if registry_url:
        stored_run_id = stored_run_id or ensure_job_row(registry_url, job_id, config)
    try:
        run_id = job_mlflow_run(config, job_id, tracking_uri, stored_run_id)
    except Exception as exc:
        registry_update(registry_url, job_id, status="failed", error=failure_text(exc, tracking_uri))
        raise
    write_state(job_dir, job_id=job_id, mlflow_run_id=run_id, status="running", error=None)
    registry_update(registry_url, job_id, status="running", mlflow_run_id=run_id, error=None)
    client(tracking_uri).update_run(run_id, status="RUNNING")
    try:
        config = _pin_registry_models(config, job_dir, state, tracking_uri, run_id)
    except Exception as exc:
        registry_update(registry_url, job_id, status="failed", error=failure_text(exc, tracking_uri))
        client(tracking_uri).update_run(run_id, status="FAILED")
        raise
    if config.data.hard_negatives is not None:
        config = mine_hard_negatives(config, job_dir, tracking_uri, run_id)
        check_enough_examples(config)

    if tracking_wait_s is None:
        from counterpoint.settings import get_settings

        tracking_wait_s = get_settings().train_tracking_wait_s
    loop_config = {
        "config": config.model_dump(mode="json"),
        "job_id": job_id,
        "tracking_uri": tracking_uri,
        "mlflow_run_id": run_id,
        "registry_url": registry_url,
        "crash_at_step": crash_at_step,
        "crash_marker": str(job_dir / "crash_injected"),
        "tracking_wait_s": tracking_wait_s,
    }
    trainer = _trainer(config, loop_config, storage_dir, job_id, cpus_per_worker)
    try:
        fit = trainer.fit()
        if fit.error is not None:
            raise fit.error
    except BaseException as exc:
        _record_failure(exc, job_dir, job_id, run_id, tracking_uri, registry_url)
        raise

    result: dict[str, Any] = {"job_id": job_id, "mlflow_run_id": run_id, "status": "succeeded"}
    result.update(fit.metrics or {})
    client(tracking_uri).set_terminated(run_id, "FINISHED")
    metrics = {  # the final metrics and the model URIs, for the gateway and the UI
        k: v for k, v in result.items() if k not in ("job_id", "status", "mlflow_run_id")
    }
    registry_update(registry_url, job_id, status="succeeded", metrics=metrics, error=None)
    write_state(job_dir, status="succeeded", error=None, result=result)
    return result


def _pin_registry_models(
    config: TrainConfig, job_dir: Path, state: dict[str, Any], tracking_uri: str, run_id: str
) -> TrainConfig:
    """:func:`resolve_registry_models` with the job's pins: a resume uses the versions the aliases
    named when the job started, wherever the aliases went since."""
    from counterpoint.infra.tracking import client

    pins = dict(state.get("models", {}))
    config = resolve_registry_models(config, tracking_uri, job_dir / "models", pins)
    if pins and pins != state.get("models"):
        write_state(job_dir, models=pins)
        for field, ref in pins.items():
            client(tracking_uri).set_tag(run_id, f"counterpoint.model.{field}", ref)
    return config


def _trainer(
    config: TrainConfig,
    loop_config: dict[str, Any],
    storage_dir: Path,
    job_id: str,
    cpus_per_worker: float | None,
) -> Any:
    """The job's ``TorchTrainer``: ``config.workers`` CPU workers of ``cpus_per_worker`` CPUs each
    (default: the free CPUs shared evenly), checkpoints kept under ``storage_dir/job_id``."""
    import ray.train
    from ray.train.torch import TorchTrainer

    cpus = cpus_per_worker or default_cpus_per_worker(config.workers)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**loop_config, "threads": max(1, math.floor(cpus))},
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.workers, use_gpu=False, resources_per_worker={"CPU": cpus}
        ),
        run_config=ray.train.RunConfig(
            name=job_id,
            storage_path=str(storage_dir),
            failure_config=ray.train.FailureConfig(max_failures=config.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        ),
    )


def _record_failure(
    exc: BaseException, job_dir: Path, job_id: str, run_id: str, tracking_uri: str, registry_url: str | None
) -> None:
    """A failed (or cancelled) fit in the registry row, the MLflow run and the state file."""
    from counterpoint.infra.tracking import client

    error = failure_text(exc, tracking_uri)
    cancelled = was_cancelled(registry_url, job_id)
    if not cancelled:
        registry_update(registry_url, job_id, status="failed", error=error[:10_000])
    try:
        mlflow_client = client(tracking_uri)
        if not cancelled:
            mlflow_client.set_tag(run_id, "counterpoint.error", error[:5000])
        mlflow_client.set_terminated(run_id, "KILLED" if cancelled else "FAILED")
    except Exception:  # noqa: BLE001
        log.warning("could not mark MLflow run %s failed", run_id)
    write_state(job_dir, status="failed", error=error)
