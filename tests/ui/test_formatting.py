"""How the dashboard shows values: durations, numbers, badges and a job's progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from counterpoint.schemas import JobInfo
from counterpoint.ui import formatting


def _job(**fields: object) -> JobInfo:
    base = {"id": "j", "name": "n", "kind": "train-biencoder", "status": "running", "config": {}}
    return JobInfo.model_validate({**base, **fields})


def test_job_progress_and_eta() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    job = _job(metrics={"step": 25, "total_steps": 100}, created_at=now - timedelta(seconds=50))
    assert formatting.job_progress(job, now) == (0.25, 150.0)
    job = _job(metrics={"step": 5}, config={"max_steps": 10}, created_at=now - timedelta(seconds=10))
    assert formatting.job_progress(job, now) == (0.5, 10.0)
    assert formatting.job_progress(_job(metrics={"step": 5}), now) == (None, None)
    assert formatting.job_progress(_job(status="succeeded"), now) == (1.0, 0.0)
    done = _job(status="failed", metrics={"step": 3, "total_steps": 10}, created_at=now)
    assert formatting.job_progress(done, now) == (0.3, None)


def test_formatting() -> None:
    assert formatting.fmt_duration(75) == "1m 15s"
    assert formatting.fmt_duration(3700) == "1h 01m"
    assert formatting.fmt_duration(None) == "—"
    assert formatting.fmt_number(1234) == "1,234" and formatting.fmt_number(0.000123456) == "0.0001235"
    assert formatting.badge("ok") == ":green-badge[:material/check_circle: ok]"
