"""A job's records outside Ray: its state file next to the checkpoints and its registry row.

``{storage_dir}/{job_id}/counterpoint_job.json`` keeps the MLflow run id, the model pins, the
status and, once succeeded, the result; the registry row (best effort) shows progress to the
gateway and the UI. Imports: :mod:`counterpoint.infra.db.registry` (lazily) and the workers' config.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from counterpoint.workers.config import TrainConfig

log = logging.getLogger("counterpoint.workers.train")

JOB_STATE_FILE = "counterpoint_job.json"


def read_state(job_dir: Path) -> dict[str, Any]:
    path = job_dir / JOB_STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(job_dir: Path, **fields: Any) -> None:
    """Update the job's state file with ``fields`` (what is not named stays, e.g. the model pins)."""
    state = {**read_state(job_dir), **fields}
    job_dir.mkdir(parents=True, exist_ok=True)
    tmp = job_dir / f".{JOB_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(job_dir / JOB_STATE_FILE)


@functools.lru_cache(maxsize=4)
def registry(registry_url: str) -> Any:
    from counterpoint.infra.db.registry import Registry

    return Registry.from_url(registry_url)  # migrates once per process, then reuses the pool


def registry_update(registry_url: str | None, job_id: str, **fields: Any) -> None:
    """Best effort: the registry row shows progress; a registry hiccup never stops training."""
    if not registry_url:
        return
    try:
        registry(registry_url).update_job(job_id, **fields)
    except Exception as exc:  # noqa: BLE001
        log.warning("registry update of job %s failed: %s", job_id, exc)


def ensure_job_row(registry_url: str, job_id: str, config: TrainConfig) -> str | None:
    """Create the registry row if the gateway did not; return its stored MLflow run id."""
    from counterpoint.errors import NotFound

    rows = registry(registry_url)
    try:
        return rows.get_job(job_id).mlflow_run_id
    except NotFound:
        rows.create_job("train", config.model_dump(mode="json"), name=config.name, job_id=job_id)
        return None


def was_cancelled(registry_url: str | None, job_id: str) -> bool:
    """Whether the gateway cancelled this job (its stop is why the driver is failing now)."""
    if not registry_url:
        return False
    try:
        return registry(registry_url).get_job(job_id).status == "cancelled"
    except Exception:  # noqa: BLE001
        return False
