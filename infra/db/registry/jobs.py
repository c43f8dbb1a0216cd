"""The registry's jobs table: training and re-index jobs, their status, ids and latest metrics.

A finished job (succeeded, failed, cancelled) keeps its status; only :meth:`JobsTable.reopen_job`
moves a failed or cancelled one back to ``pending``, to resume from its checkpoints.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from counterpoint.errors import Conflict
from counterpoint.infra.db.models import JOB_STATUSES, JOB_TERMINAL_STATUSES, JobRow, utcnow
from counterpoint.infra.db.registry.base import UNSET, RegistryBase, _Unset, check_choice
from counterpoint.infra.db.registry.records import JobRecord, to_record

_job = partial(to_record, JobRecord)


class JobsTable(RegistryBase):
    """The jobs part of :class:`~counterpoint.infra.db.registry.Registry`."""

    def create_job(
        self,
        kind: str,
        config: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        job_id: str | None = None,
        status: str = "pending",
    ) -> JobRecord:
        """Record a new job (``pending`` by default); the id is a fresh UUID unless given."""
        check_choice("job status", status, JOB_STATUSES)
        job_id = job_id or str(uuid.uuid4())
        name = name or f"{kind}-{job_id[:8]}"
        row = JobRow(id=job_id, name=name, kind=kind, status=status, config=dict(config or {}))
        return self._insert(row, _job, f"job {job_id!r} already exists")

    def get_job(self, job_id: str) -> JobRecord:
        return self._get(select(JobRow).where(JobRow.id == job_id), _job, f"job {job_id!r} does not exist")

    def list_jobs(
        self, *, status: str | Sequence[str] | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """Jobs, newest first; optionally only some statuses, one kind, the ``limit`` newest."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            query = query.where(JobRow.status.in_(statuses))
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        return self._list(query, _job)

    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        name: str | None = None,
        ray_job_id: str | None | _Unset = UNSET,
        mlflow_run_id: str | None | _Unset = UNSET,
        error: str | None | _Unset = UNSET,
        metrics: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Change the given fields (``metrics`` replaces the stored dict); return the job.

        A finished job (succeeded, failed, cancelled) keeps its status: moving it elsewhere
        raises ``Conflict``, e.g. cancelling a job that has just succeeded.
        """
        if status is not None:
            check_choice("job status", status, JOB_STATUSES)
        with self._tx(write=True) as session:
            row = self._job_row(session, job_id, for_update=True)
            if status is not None and status != row.status:
                if row.status in JOB_TERMINAL_STATUSES:
                    raise Conflict(f"job {job_id!r} already {row.status}; cannot move it to {status!r}")
                row.status = status
            if name is not None:
                row.name = name
            for column, value in (
                ("ray_job_id", ray_job_id),
                ("mlflow_run_id", mlflow_run_id),
                ("error", error),
            ):
                if value is not UNSET:
                    setattr(row, column, value)
            if metrics is not None:
                row.metrics = dict(metrics)
            row.updated_at = utcnow()
            session.flush()
            return _job(row)

    def reopen_job(self, job_id: str) -> JobRecord:
        """Move a failed or cancelled job back to ``pending`` so it can resume from its checkpoints.

        The one way out of a terminal status; a succeeded job stays succeeded (``Conflict``), and so
        does a job that is still pending or running.
        """
        with self._tx(write=True) as session:
            row = self._job_row(session, job_id, for_update=True)
            if row.status not in ("failed", "cancelled"):
                raise Conflict(f"job {job_id!r} is {row.status}; only a failed or cancelled job can resume")
            row.status = "pending"
            row.error = None
            row.updated_at = utcnow()
            session.flush()
            return _job(row)

    def _job_row(self, session: Session, job_id: str, *, for_update: bool = False) -> JobRow:
        query = select(JobRow).where(JobRow.id == job_id)
        return self._one(session, query, f"job {job_id!r} does not exist", for_update=for_update)
