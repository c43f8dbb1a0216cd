"""Stand-ins shared by unit tests (never the only test of the part they replace)."""

from __future__ import annotations


class NoRay:
    """The jobs API without Ray, for gateways whose jobs are only read from the registry
    (listing, re-index jobs): submitting is a test error; every job looks running."""

    def submit(self, job_id: str, entrypoint: str) -> str:
        raise AssertionError("not used")

    def status(self, ray_job_id: str) -> str:
        return "RUNNING"

    def logs(self, ray_job_id: str) -> str:
        return ""

    def stop(self, ray_job_id: str) -> None:
        pass
