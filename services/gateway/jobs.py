"""Training jobs: validate a config, record the job, submit it to Ray, report and cancel.

The job itself runs as a Ray job whose driver is `python -m counterpoint.workers.train`;
it updates the job's registry row (running, metrics, MLflow run, outcome) as it goes. The
gateway adds what only Ray knows: a driver that died or was stopped before it could say so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import sys
from typing import Protocol

from counterpoint.errors import Conflict, InvalidInput, Unavailable
from counterpoint.infra.db.registry import JobRecord, Registry
from counterpoint.schemas import JobCreate, JobInfo, JobLogs
from counterpoint.settings import Settings
from counterpoint.workers.config import parse_config

logger = logging.getLogger("counterpoint.gateway.jobs")

RAY_TO_JOB = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "cancelled",
}


class JobSubmitter(Protocol):
    """The part of Ray's job API the gateway uses."""

    def submit(self, job_id: str, entrypoint: str) -> str: ...

    def status(self, ray_job_id: str) -> str: ...

    def logs(self, ray_job_id: str) -> str: ...

    def stop(self, ray_job_id: str) -> None: ...


class RayJobSubmitter:
    """Ray's `JobSubmissionClient` against the cluster's dashboard address."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._client = None

    @property
    def client(self):  # type: ignore[no-untyped-def]
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.address)
            except Exception as exc:  # noqa: BLE001 - any connection failure means "not reachable"
                raise Unavailable(f"the Ray job API at {self.address} is not reachable: {exc}") from None
        return self._client

    def submit(self, job_id: str, entrypoint: str) -> str:
        return self.client.submit_job(entrypoint=entrypoint, submission_id=f"{job_id}-{_short_uuid()}")

    def status(self, ray_job_id: str) -> str:
        return str(self.client.get_job_status(ray_job_id).value)

    def logs(self, ray_job_id: str) -> str:
        return str(self.client.get_job_logs(ray_job_id))

    def stop(self, ray_job_id: str) -> None:
        self.client.stop_job(ray_job_id)


def _short_uuid() -> str:
    import uuid

    return uuid.uuid4().hex[:6]


def job_info(record: JobRecord) -> JobInfo:
    return JobInfo.model_validate(record, from_attributes=True)


class JobService:
    def __init__(self, settings: Settings, registry: Registry, submitter: JobSubmitter) -> None:
        self.settings = settings
        self.registry = registry
        self.submitter = submitter

    def entrypoint(self, job_id: str) -> str:
        s = self.settings
        args = [
            sys.executable, "-m", "counterpoint.workers.train",
            "--config", str(s.jobs_dir / job_id / "config.json"),
            "--job-id", job_id,
            "--storage", str(s.jobs_dir),
            "--tracking-uri", s.tracking_uri,
            "--registry-url", s.db_url,
        ]  # fmt: skip
        return shlex.join(args)

    async def submit(self, request: JobCreate) -> JobInfo:
        config = await asyncio.to_thread(parse_config, request.config)  # reads the data's first rows
        record = self.registry.create_job(request.kind, config.model_dump(mode="json"), name=config.name)
        folder = self.settings.jobs_dir / record.id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config.model_dump(mode="json"), indent=2))
        try:
            ray_id = await asyncio.to_thread(self.submitter.submit, record.id, self.entrypoint(record.id))
        except Exception as exc:  # noqa: BLE001 - any refusal by Ray is reported the same way
            self.registry.update_job(record.id, status="failed", error=f"submission failed: {exc}")
            raise Unavailable(f"Ray did not accept job {record.id}: {exc}") from None
        return job_info(self.registry.update_job(record.id, ray_job_id=ray_id))

    async def _reconcile(self, record: JobRecord) -> JobRecord:
        """Fold in Ray's view when the driver ended without recording an outcome."""
        if record.finished or record.ray_job_id is None:
            return record
        try:
            ray_status = RAY_TO_JOB[await asyncio.to_thread(self.submitter.status, record.ray_job_id)]
        except Exception:  # noqa: BLE001 - Ray unreachable: report what the registry knows
            return record
        if ray_status in ("failed", "cancelled", "succeeded") or (
            ray_status == "running" and record.status == "pending"
        ):
            error = record.error
            if ray_status == "failed" and not error:
                logs = await asyncio.to_thread(self.submitter.logs, record.ray_job_id)
                error = (logs.strip().splitlines() or ["the job driver failed"])[-1][:2000]
            try:
                return self.registry.update_job(record.id, status=ray_status, error=error)
            except Conflict:
                return self.registry.get_job(record.id)
        return record

    async def get(self, job_id: str) -> JobInfo:
        return job_info(await self._reconcile(self.registry.get_job(job_id)))

    async def list(self) -> list[JobInfo]:
        return [job_info(await self._reconcile(r)) for r in self.registry.list_jobs(limit=200)]

    async def logs(self, job_id: str, tail: int = 200) -> JobLogs:
        record = self.registry.get_job(job_id)
        if record.ray_job_id is None:
            return JobLogs(id=job_id, logs="")
        text = await asyncio.to_thread(self.submitter.logs, record.ray_job_id)
        return JobLogs(id=job_id, logs="\n".join(text.splitlines()[-tail:]))

    async def cancel(self, job_id: str) -> JobInfo:
        """Stop the Ray job; the registry row says cancelled and the MLflow run KILLED."""
        record = self.registry.get_job(job_id)
        if record.finished:
            raise Conflict(f"job '{job_id}' already {record.status}")
        try:
            record = self.registry.update_job(job_id, status="cancelled")
        except Conflict:
            return job_info(self.registry.get_job(job_id))
        if record.ray_job_id is not None:
            await asyncio.to_thread(self.submitter.stop, record.ray_job_id)
        if record.mlflow_run_id:
            await asyncio.to_thread(self._end_run, record.mlflow_run_id, "KILLED")
        return job_info(record)

    async def resume(self, job_id: str) -> JobInfo:
        """Run a failed or cancelled job again under its id: it continues from its last checkpoint,
        in the same MLflow run."""
        config = self.settings.jobs_dir / job_id / "config.json"
        record = self.registry.get_job(job_id)
        if record.status in ("failed", "cancelled") and not config.is_file():
            raise Conflict(f"job '{job_id}' has no stored config at {config}; submit it again instead")
        self.registry.reopen_job(job_id)
        try:
            ray_id = await asyncio.to_thread(self.submitter.submit, job_id, self.entrypoint(job_id))
        except Exception as exc:  # noqa: BLE001
            self.registry.update_job(job_id, status="failed", error=f"resubmission failed: {exc}")
            raise Unavailable(f"Ray did not accept job {job_id}: {exc}") from None
        return job_info(self.registry.update_job(job_id, ray_job_id=ray_id))

    def _end_run(self, run_id: str, status: str) -> None:
        """Best effort: a run left RUNNING after its job ended would mislead anyone reading MLflow."""
        try:
            from counterpoint.infra.tracking import client

            client(self.settings.tracking_uri).set_terminated(run_id, status)
        except Exception as exc:  # noqa: BLE001 - MLflow down must not block a cancel
            logger.warning("could not mark MLflow run %s %s: %s", run_id, status, exc)


def check_tail(tail: int) -> int:
    if not 1 <= tail <= 10_000:
        raise InvalidInput("tail must be between 1 and 10000 lines")
    return tail
