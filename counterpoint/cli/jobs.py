"""`counterpoint train` and `counterpoint jobs ...`: submit, list, follow, resume and cancel training jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli import shared
from counterpoint.cli.shared import job_line, out
from counterpoint.schemas import JobInfo

jobs_app = typer.Typer(help="List, inspect, follow and cancel training jobs.", no_args_is_help=True)


def _started(job: JobInfo, message: str, follow_job: bool) -> None:
    """Print that a job started; with ``--follow``, watch it to the end (exit 1 unless it succeeds)."""
    out.print(message)
    if follow_job:
        shared.follow_to_the_end(job.id)


def train(
    config: Annotated[Path, typer.Argument(help="Training config, YAML or JSON (see examples/).")],
    follow_job: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch progress until it finishes.")
    ] = False,
) -> None:
    """Validate a training config and submit it as a Ray job (tracked in MLflow)."""
    job = cli.client().submit_job(config)
    _started(
        job, f"submitted job {job.id} ({job.name}); follow with `counterpoint jobs show {job.id}`", follow_job
    )


@jobs_app.command("list")
def jobs_list() -> None:
    """Jobs, newest first."""
    table = Table("id", "name", "status", "step", "metrics", "created")
    for job in cli.client().list_jobs():
        step = f"{job.metrics.get('step', '')}/{job.metrics.get('total_steps', '')}" if job.metrics else ""
        table.add_row(
            job.id[:8], job.name, job.status, step, job_line(job), f"{job.created_at:%Y-%m-%d %H:%M}"
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, follow_job: Annotated[bool, typer.Option("--follow", "-f")] = False) -> None:
    """A job's state, config, MLflow run and metrics."""
    job = shared.follow(job_id) if follow_job else cli.client().get_job(job_id)
    out.print_json(job.model_dump_json())


@jobs_app.command("logs")
def jobs_logs(job_id: str, tail: Annotated[int, typer.Option(help="Lines from the end.")] = 200) -> None:
    """The tail of a job's driver log."""
    out.print(cli.client().job_logs(job_id, tail=tail), markup=False, highlight=False)


@jobs_app.command("resume")
def jobs_resume(
    job_id: str,
    follow_job: Annotated[bool, typer.Option("--follow", "-f", help="Watch it until it finishes.")] = False,
) -> None:
    """Run a failed or cancelled job again from its last checkpoint (same MLflow run)."""
    job = cli.client().resume_job(job_id)
    _started(job, f"job {job.id} resubmitted ({job.status})", follow_job)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Stop a running job."""
    job = cli.client().cancel_job(job_id)
    out.print(f"job {job.id} {job.status}")
