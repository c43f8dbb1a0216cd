"""The driver's side of a job's MLflow run: create or re-join it, and the text a failed job records.

Imports: the workers' config, :mod:`.publish` (reachability) and :mod:`counterpoint.infra.tracking`
(lazily).
"""

from __future__ import annotations

import logging

from counterpoint.workers.config import TrainConfig
from counterpoint.workers.train.publish import tracking_reachable

log = logging.getLogger("counterpoint.workers.train")


def job_mlflow_run(config: TrainConfig, job_id: str, tracking_uri: str, run_id: str | None) -> str:
    """The job's MLflow run: ``run_id`` if it still exists, else a new one with params and config."""
    from mlflow.entities import Param, RunTag

    from counterpoint.infra.tracking import client, flatten_params, get_or_create_experiment, redacted

    mlflow_client = client(tracking_uri)
    if run_id:
        try:
            mlflow_client.get_run(run_id)
            return run_id
        except Exception:  # noqa: BLE001 - deleted or another server: start a fresh run
            log.warning("MLflow run %s not found; starting a new run for job %s", run_id, job_id)
    experiment_id = get_or_create_experiment(config.experiment, tracking_uri)
    run = mlflow_client.create_run(
        experiment_id,
        run_name=f"{config.name}-{job_id[:8]}",
        tags={
            "counterpoint.job_id": job_id,
            "counterpoint.kind": "train",
            "counterpoint.model": config.model,
        },
    )
    config_dict = config.model_dump(mode="json")
    params = [Param(k, v) for k, v in flatten_params(config_dict).items()]
    for start in range(0, len(params), 100):  # log_batch takes at most 100 params
        mlflow_client.log_batch(run.info.run_id, params=params[start : start + 100])
    mlflow_client.log_batch(
        run.info.run_id, tags=[RunTag("mlflow.note.content", f"Counterpoint job {job_id}")]
    )
    mlflow_client.log_dict(run.info.run_id, redacted(config_dict), "config.yaml")
    return run.info.run_id


def failure_text(exc: BaseException, tracking_uri: str) -> str:
    """The error a failed job records; it says so first when MLflow is unreachable (the likely cause)."""
    text = f"{type(exc).__name__}: {exc}"
    if not tracking_reachable(tracking_uri):
        text = f"MLflow at {tracking_uri} is unreachable; resume the job once it answers again. {text}"
    return text[:10_000]
