"""What the registry returns: frozen records of collections, jobs, models and API keys.

Records are plain dataclasses copied out of ORM rows (:func:`to_record`), so no session or
lazy load leaks to callers and records cross threads and Ray processes freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from counterpoint.infra.db.models import JOB_TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    name: str
    physical_name: str
    model: str
    dimensions: int
    distance: str
    payload_indexes: dict[str, str]
    status: str
    mirror_physical: str | None
    mirror_model: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def reindexing(self) -> bool:
        """Whether a re-index is building its new collection (writes go to both)."""
        return self.mirror_physical is not None


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    ray_job_id: str | None
    mlflow_run_id: str | None
    error: str | None
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal status (succeeded, failed or cancelled)."""
        return self.status in JOB_TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ModelRecord:
    name: str
    uri: str
    kind: str
    dimensions: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    key_hash: str = field(repr=False)
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


R = TypeVar("R", CollectionRecord, JobRecord, ModelRecord, ApiKeyRecord)


def to_record(record: type[R], row: Any) -> R:
    """A ``record`` from the row's columns of the same names; JSON dicts and lists are copied."""
    values: dict[str, Any] = {}
    for column in fields(record):
        value = getattr(row, column.name)
        if isinstance(value, dict):
            value = dict(value)
        elif isinstance(value, list):
            value = list(value)
        values[column.name] = value
    return record(**values)
