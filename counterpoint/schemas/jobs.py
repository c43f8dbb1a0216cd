"""Training jobs: what a submission holds, a job's state, its logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from counterpoint.schemas.base import StrictModel


class JobCreate(StrictModel):
    """A training job: the config as a mapping, or as YAML/JSON text."""

    config: dict[str, Any] | str
    kind: Literal["train-biencoder"] = "train-biencoder"


class JobInfo(BaseModel):
    id: str
    name: str
    kind: str
    status: Literal["pending", "running", "succeeded", "failed", "cancelled"]
    config: dict[str, Any]
    ray_job_id: str | None = None
    mlflow_run_id: str | None = None
    error: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")


class JobList(BaseModel):
    jobs: list[JobInfo]


class JobLogs(BaseModel):
    id: str
    logs: str
