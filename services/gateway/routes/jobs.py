"""Training jobs: submit, list, inspect, read logs, resume and cancel."""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.schemas import JobCreate, JobInfo, JobList, JobLogs
from counterpoint.services.gateway.auth import READ, TRAIN
from counterpoint.services.gateway.dependencies import Services
from counterpoint.services.gateway.jobs import check_tail

router = APIRouter(tags=["jobs"])


@router.get("/v1/jobs", response_model=JobList, dependencies=[READ])
async def list_jobs(services: Services) -> JobList:
    return JobList(jobs=await services.jobs().list())


@router.post("/v1/jobs", response_model=JobInfo, status_code=201, dependencies=[TRAIN])
async def submit_job(body: JobCreate, services: Services) -> JobInfo:
    return await services.jobs().submit(body)


@router.get("/v1/jobs/{job_id}", response_model=JobInfo, dependencies=[READ])
async def get_job(job_id: str, services: Services) -> JobInfo:
    return await services.jobs().get(job_id)


@router.get("/v1/jobs/{job_id}/logs", response_model=JobLogs, dependencies=[TRAIN])
async def job_logs(job_id: str, services: Services, tail: int = 200) -> JobLogs:
    return await services.jobs().logs(job_id, check_tail(tail))


@router.post("/v1/jobs/{job_id}/resume", response_model=JobInfo, dependencies=[TRAIN])
async def resume_job(job_id: str, services: Services) -> JobInfo:
    """Run a failed or cancelled job again: it continues from its last checkpoint."""
    return await services.jobs().resume(job_id)


@router.delete("/v1/jobs/{job_id}", response_model=JobInfo, dependencies=[TRAIN])
async def cancel_job(job_id: str, services: Services) -> JobInfo:
    return await services.jobs().cancel(job_id)
