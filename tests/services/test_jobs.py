"""The jobs API contract: config validation before submission, status reconciliation, cancel.

Ray's job API is replaced here by a recording fake; tests/e2e submits real jobs to Ray.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.jobs import JobService


class FakeSubmitter:
    def __init__(self) -> None:
        self.submitted: list[tuple[str, str]] = []
        self.state = "RUNNING"
        self.stopped: list[str] = []

    def submit(self, job_id: str, entrypoint: str) -> str:
        self.submitted.append((job_id, entrypoint))
        return f"ray-{job_id[:8]}"

    def status(self, ray_job_id: str) -> str:
        return self.state

    def logs(self, ray_job_id: str) -> str:
        return "starting\nValueError: out of cheese\n"

    def stop(self, ray_job_id: str) -> None:
        self.stopped.append(ray_job_id)


@pytest.fixture()
def pairs(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"anchor": f"q{i}", "positive": f"d{i}"}) for i in range(8)))
    return path


@pytest.fixture()
def fake() -> FakeSubmitter:
    return FakeSubmitter()


@pytest.fixture()
def jobs_api(core: GatewayCore, fake: FakeSubmitter) -> Iterator[TestClient]:
    service = JobService(core.settings, core.registry, fake)
    with TestClient(create_app(core, jobs=service), raise_server_exceptions=False) as client:
        yield client


def test_submit_records_and_submits(
    jobs_api: TestClient, fake: FakeSubmitter, pairs: Path, core: GatewayCore
) -> None:
    reply = jobs_api.post(
        "/v1/jobs", json={"config": {"name": "t1", "data": {"path": str(pairs)}, "max_steps": 3}}
    )
    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert (job["name"], job["status"], job["ray_job_id"]) == ("t1", "pending", f"ray-{job['id'][:8]}")
    job_id, entrypoint = fake.submitted[0]
    assert job_id == job["id"] and "counterpoint.workers.train" in entrypoint and job_id in entrypoint
    saved = json.loads((core.settings.jobs_dir / job_id / "config.json").read_text())
    assert saved["max_steps"] == 3 and saved["loss"]["name"] == "mnrl"
    listed = jobs_api.get("/v1/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job_id]
    assert listed[0]["status"] == "running"  # Ray says it runs


def test_yaml_text_config_is_accepted(jobs_api: TestClient, pairs: Path) -> None:
    text = f"name: from-yaml\ndata:\n  path: {pairs}\nloss:\n  name: mnrl\n  symmetric: true\n"
    reply = jobs_api.post("/v1/jobs", json={"config": text})
    assert reply.status_code == 201, reply.text
    assert reply.json()["config"]["loss"]["symmetric"] is True


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"loss": {"name": "triplet-magic"}}, ("loss.name",)),
        ({"lr": -1}, ("lr",)),
        ({"data": {"path": "/no/such/file.jsonl"}}, ("data.path", "no such file")),
        ({"data": {"kind": "pairs", "columns": {"anchor": "question"}}}, ("question", "anchor")),
        ({"loss": {"name": "cosent"}}, ("loss.name", "scored_pairs")),
        ({"surprise": 1}, ("surprise",)),
    ],
)
def test_bad_configs_are_rejected_before_submission(
    jobs_api: TestClient, fake: FakeSubmitter, pairs: Path, config: dict, words: tuple[str, ...]
) -> None:
    body = {"name": "bad", "data": {"path": str(pairs)}}
    for key, value in config.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) and key in body else value
    reply = jobs_api.post("/v1/jobs", json={"config": body})
    assert reply.status_code == 422, reply.text
    for word in words:
        assert word in reply.json()["error"]["message"]
    assert fake.submitted == [] and jobs_api.get("/v1/jobs").json()["jobs"] == []


def test_failed_driver_is_reported_with_its_error(
    jobs_api: TestClient, fake: FakeSubmitter, pairs: Path
) -> None:
    job_id = jobs_api.post("/v1/jobs", json={"config": {"data": {"path": str(pairs)}}}).json()["id"]
    fake.state = "FAILED"
    job = jobs_api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "failed" and "out of cheese" in job["error"]
    assert "out of cheese" in jobs_api.get(f"/v1/jobs/{job_id}/logs", params={"tail": 1}).json()["logs"]


def test_cancel(jobs_api: TestClient, fake: FakeSubmitter, pairs: Path) -> None:
    job_id = jobs_api.post("/v1/jobs", json={"config": {"data": {"path": str(pairs)}}}).json()["id"]
    assert jobs_api.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert fake.stopped == [f"ray-{job_id[:8]}"]
    again = jobs_api.delete(f"/v1/jobs/{job_id}")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]["message"]
    assert jobs_api.get("/v1/jobs/nope").status_code == 404


def test_jobs_unavailable_without_ray(api: TestClient) -> None:
    reply = api.get("/v1/jobs")
    assert reply.status_code == 503 and "not enabled" in reply.json()["error"]["message"]


def test_failed_or_cancelled_job_resumes_under_its_id(
    jobs_api: TestClient, fake: FakeSubmitter, pairs: Path
) -> None:
    job_id = jobs_api.post("/v1/jobs", json={"config": {"data": {"path": str(pairs)}}}).json()["id"]
    running = jobs_api.post(f"/v1/jobs/{job_id}/resume")
    assert (
        running.status_code == 409 and "only a failed or cancelled job" in running.json()["error"]["message"]
    )
    fake.state = "FAILED"
    assert jobs_api.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"
    fake.state = "RUNNING"
    resumed = jobs_api.post(f"/v1/jobs/{job_id}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "pending" and resumed.json()["error"] is None
    assert [j for j, _ in fake.submitted] == [job_id, job_id]  # same id: the job resumes
    assert jobs_api.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    jobs_api.delete(f"/v1/jobs/{job_id}")
    assert jobs_api.post(f"/v1/jobs/{job_id}/resume").status_code == 200
    assert jobs_api.post("/v1/jobs/nope/resume").status_code == 404


def test_cancel_marks_the_mlflow_run_killed(
    core: GatewayCore, fake: FakeSubmitter, pairs: Path, tmp_path: Path
) -> None:
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings = core.settings.model_copy(update={"mlflow_tracking_uri": tracking})
    service = JobService(settings, core.registry, fake)
    with TestClient(create_app(core, jobs=service), raise_server_exceptions=False) as api:
        job_id = api.post("/v1/jobs", json={"config": {"data": {"path": str(pairs)}}}).json()["id"]
        run = mlflow.MlflowClient(tracking).create_run(
            mlflow.MlflowClient(tracking).create_experiment("cancel-test")
        )
        core.registry.update_job(job_id, status="running", mlflow_run_id=run.info.run_id)
        assert api.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    assert mlflow.MlflowClient(tracking).get_run(run.info.run_id).info.status == "KILLED"
