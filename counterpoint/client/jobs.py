"""SDK methods for training jobs (submit, inspect, follow, resume, cancel) and API keys (admin scope)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from counterpoint.client.transport import Transport
from counterpoint.errors import InvalidInput
from counterpoint.schemas import JobCreate, JobInfo, JobList, JobLogs, KeyCreate, KeyCreated, KeyInfo, KeyList


class JobsAPI(Transport):
    """``/v1/jobs/...``."""

    def submit_job(self, config: Mapping[str, Any] | str | Path) -> JobInfo:
        """Submit a training job: a config mapping, YAML/JSON text, or the path of a config file."""
        if isinstance(config, Path) or (
            isinstance(config, str) and "\n" not in config and config.endswith((".yaml", ".yml", ".json"))
        ):
            path = Path(config)
            if not path.is_file():
                raise InvalidInput(f"no such config file: {path}")
            config = path.read_text()
        body = JobCreate(config=dict(config) if isinstance(config, Mapping) else config)
        return JobInfo.model_validate(self._request("POST", "/v1/jobs", json=body.model_dump()))

    def list_jobs(self) -> list[JobInfo]:
        return JobList.model_validate(self._request("GET", "/v1/jobs")).jobs

    def get_job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(self._request("GET", f"/v1/jobs/{job_id}"))

    def job_logs(self, job_id: str, *, tail: int = 200) -> str:
        return JobLogs.model_validate(
            self._request("GET", f"/v1/jobs/{job_id}/logs", params={"tail": tail})
        ).logs

    def resume_job(self, job_id: str) -> JobInfo:
        """Run a failed or cancelled job again; it continues from its last checkpoint."""
        return JobInfo.model_validate(self._request("POST", f"/v1/jobs/{job_id}/resume"))

    def cancel_job(self, job_id: str) -> JobInfo:
        return JobInfo.model_validate(self._request("DELETE", f"/v1/jobs/{job_id}"))

    def follow_job(
        self, job_id: str, *, interval: float = 2.0, timeout: float | None = None
    ) -> Iterator[JobInfo]:
        """Yield the job's state every ``interval`` seconds until it finishes (or ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            yield job
            if job.finished or (deadline is not None and time.monotonic() > deadline):
                return
            time.sleep(interval)


class KeysAPI(Transport):
    """``/v1/keys/...`` (admin scope)."""

    def create_key(self, name: str, scopes: Iterable[str] = ("read",)) -> KeyCreated:
        """Create an API key; ``.key`` holds the secret, returned this once only."""
        body = KeyCreate(name=name, scopes=list(scopes)).model_dump()
        return KeyCreated.model_validate(self._request("POST", "/v1/keys", json=body))

    def list_keys(self, *, include_revoked: bool = False) -> list[KeyInfo]:
        params = {"include_revoked": str(include_revoked).lower()}
        return KeyList.model_validate(self._request("GET", "/v1/keys", params=params)).keys

    def revoke_key(self, key_id: str) -> KeyInfo:
        """Revoke a key by its id or prefix."""
        return KeyInfo.model_validate(self._request("DELETE", f"/v1/keys/{key_id}"))
