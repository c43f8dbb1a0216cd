"""What every CLI command group shares: the SDK client, the consoles, progress bars and job following.

Commands get their SDK client as ``cli.client()``: `client` below, re-exported by the package and
looked up there at each call, so a test points every command at a test gateway with
``monkeypatch.setattr(counterpoint.cli, "client", ...)``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from counterpoint.client import Client
from counterpoint.settings import get_settings

out = Console()
err = Console(stderr=True)

FUSION = typer.Option(
    min=0.0,
    max=1.0,
    help="Weight of the first-stage score mixed into the reranked score (0: reranker alone; "
    "default: the server's rerank_fusion setting).",
)
"""The ``--rerank-fusion`` option of `search` and `eval-retrieval`."""


def client() -> Client:
    """The SDK client of the configured gateway."""
    return Client(get_settings().gateway_url)


def progress(label: str) -> Progress:
    """A counting progress bar on stderr: ``label ━━━━ 12/40 0:00:05``."""
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)


def bytes_progress(label: str) -> Progress:
    """A progress bar on stderr counting bytes, with the transfer speed."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err)


def job_line(job: Any) -> str:
    """A job's numeric metrics (but its step counters), ``loss=0.31, lr=2e-05``: the first eight."""
    m = job.metrics
    parts = [
        f"{k}={m[k]:.4g}"
        for k in sorted(m)
        if isinstance(m[k], int | float) and k not in ("step", "total_steps")
    ]
    return ", ".join(parts[:8])


def follow(job_id: str) -> Any:
    """Show a progress bar with live metrics until the job finishes; returns the final job."""
    cp = client()
    job = cp.get_job(job_id)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"), console=err,
    ) as bar:  # fmt: skip
        task = bar.add_task(f"{job.name} ({job.status})", total=None, metrics="")
        for job in cp.follow_job(job_id):
            total = job.metrics.get("total_steps")
            bar.update(
                task, description=f"{job.name} ({job.status})", total=total,
                completed=job.metrics.get("step", 0), metrics=job_line(job),
            )  # fmt: skip
    return job


def follow_to_the_end(job_id: str) -> None:
    """Follow a job, print its outcome and final metrics; exit 1 unless it succeeded."""
    job = follow(job_id)
    out.print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    out.print(job_line(job))
    if job.status != "succeeded":
        raise typer.Exit(1)
