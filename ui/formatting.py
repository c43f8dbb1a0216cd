"""How the dashboard shows values: status badges, durations, times, numbers and a job's progress.

Plain functions of their arguments (no Streamlit calls), so they are tested without a browser.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from counterpoint.schemas import JobInfo

STATUS_STYLE: dict[str, tuple[str, str]] = {
    # status: (badge colour, material icon)
    "ok": ("green", "check_circle"),
    "degraded": ("orange", "warning"),
    "down": ("red", "cancel"),
    "pending": ("gray", "schedule"),
    "running": ("blue", "play_circle"),
    "succeeded": ("green", "check_circle"),
    "failed": ("red", "error"),
    "cancelled": ("gray", "block"),
}


def badge(status: str) -> str:
    """A coloured Markdown badge for a status: ``:green-badge[:material/check_circle: ok]``."""
    colour, material = STATUS_STYLE.get(status, ("gray", "help"))
    return f":{colour}-badge[:material/{material}: {status}]"


def fmt_duration(seconds: float | None) -> str:
    """``75`` -> ``1m 15s``; ``None`` -> ``—``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_number(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def job_progress(job: JobInfo, now: datetime | None = None) -> tuple[float | None, float | None]:
    """(fraction done in [0, 1], seconds left) from the job's ``step``/``total_steps`` metrics.

    ``total_steps`` falls back to the config's ``max_steps``; the ETA extrapolates the time
    since the job was created. Either value is None when it cannot be known.
    """
    if job.status == "succeeded":
        return 1.0, 0.0
    step = job.metrics.get("step")
    total = job.metrics.get("total_steps") or job.config.get("max_steps")
    if not isinstance(step, int | float) or not isinstance(total, int | float) or total <= 0:
        return None, None
    fraction = max(0.0, min(1.0, float(step) / float(total)))
    eta = None
    if job.created_at is not None and step > 0 and not job.finished:
        now = now or datetime.now(UTC)
        elapsed = (_aware(now) - _aware(job.created_at)).total_seconds()
        eta = max(0.0, elapsed * (float(total) - float(step)) / float(step))
    return fraction, eta
