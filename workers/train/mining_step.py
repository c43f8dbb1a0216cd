"""The driver's mining step: a BEIR split's hard negatives mined once per job, before training.

Imports: :mod:`counterpoint.workers.mining`, the workers' config and data, and
:mod:`counterpoint.infra.tracking` (lazily).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from counterpoint.workers.config import TrainConfig

log = logging.getLogger("counterpoint.workers.train")

HARD_NEGATIVES_FILE = "hard_negatives.jsonl"


def mine_hard_negatives(config: TrainConfig, job_dir: Path, tracking_uri: str, run_id: str) -> TrainConfig:
    """Mine the BEIR split's hard negatives once per job (a resumed job reuses the file); the config
    then trains on the triplets. The report's counts go to the MLflow run, the file as an artifact."""
    from counterpoint.infra.tracking import client
    from counterpoint.workers.data import DataSource
    from counterpoint.workers.mining import mine_beir, write_jsonl

    spec = config.data.hard_negatives
    assert spec is not None
    target = job_dir / HARD_NEGATIVES_FILE
    if not target.is_file():
        log.info("mining hard negatives for %s (%s) with %s", config.data.path, config.data.split, spec.model)
        started = time.perf_counter()
        triplets, report = mine_beir(
            config.data.path,
            config.data.split,
            **spec.model_dump(),  # model, top_k, skip_top, max_score_ratio, max_seq_length, negatives
            progress=lambda done, total: log.info("mining: embedded %d/%d documents", done, total),
        )
        staging = target.with_suffix(".tmp")
        write_jsonl(triplets, staging)
        staging.replace(target)
        mlflow_client = client(tracking_uri)
        stats = {f"mining/{k}": float(v) for k, v in report.as_dict().items()}
        stats["mining/seconds"] = time.perf_counter() - started
        for key, value in stats.items():
            mlflow_client.log_metric(run_id, key, value, step=0)
        mlflow_client.log_dict(run_id, {**report.as_dict(), "notes": report.notes}, "mining_report.json")
        mlflow_client.log_artifact(run_id, str(target))
        log.info("mined %d triplets: %s", report.triplets, report.as_dict())
    data = DataSource(path=str(target), format="jsonl", kind="triplets", limit=config.data.limit)
    return config.model_copy(update={"data": data})
