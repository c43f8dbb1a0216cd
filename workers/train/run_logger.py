"""Rank 0's MLflow logging: :class:`RunLogger`, which buffers metric points while MLflow is away.

Imports: mlflow (lazily) and the standard library only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("counterpoint.workers.train")

MLFLOW_RETRY_S = 10.0  # after a failed send, metrics are buffered this long before the next try
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type when empty), at most 500 characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]


class RunLogger:
    """Rank 0's handle on the job's MLflow run (system metrics on); a no-op on other ranks.

    Metric points at steps already in the run's history are skipped, so the steps a resumed job
    replays (those after its last checkpoint) appear once in one continuous curve.

    An MLflow server that stops answering does not stop training: the points it did not take stay
    in ``pending`` (which goes into every checkpoint, so a restarted worker still has them), another
    send is tried at a report ``MLFLOW_RETRY_S`` later, and the end of the job waits for them
    (:func:`~.publish.publish_when_reachable`).
    """

    def __init__(
        self,
        tracking_uri: str | None,
        run_id: str | None,
        *,
        enabled: bool,
        pending: list[list[Any]] | None = None,
    ) -> None:
        self.enabled = bool(enabled and tracking_uri and run_id)
        self.run_id = run_id or ""
        self.tracking_uri = tracking_uri or ""
        self.logged_until: dict[str, int] = {}
        self.pending: list[Any] = []
        self.last_error: Exception | None = None
        self._retry_at = 0.0
        if not self.enabled:
            return
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.client = mlflow.MlflowClient(tracking_uri)
        if mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.start_run(run_id=run_id, log_system_metrics=True)
        for key in self.client.get_run(run_id).data.metrics:
            if not key.startswith("system/"):
                history = self.client.get_metric_history(run_id, key)
                self.logged_until[key] = max((m.step for m in history), default=-1)
        from mlflow.entities import Metric

        for key, value, timestamp, step in pending or []:  # kept by the checkpoint we resume from
            if step > self.logged_until.get(key, -1):
                self.pending.append(Metric(key, float(value), int(timestamp), int(step)))
        for point in self.pending:
            self.logged_until[point.key] = max(self.logged_until.get(point.key, -1), point.step)
        self.flush()

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        points = [
            Metric(key, float(value), now, step)
            for key, value in metrics.items()
            if step > self.logged_until.get(key, -1) and math.isfinite(float(value))
        ]
        for point in points:
            self.logged_until[point.key] = step
        self.pending.extend(points)
        self.flush(force=False)

    def flush(self, *, force: bool = True) -> bool:
        """Send the pending points; False (they stay pending) when MLflow did not take them.

        Without ``force`` nothing is tried until ``MLFLOW_RETRY_S`` after the last failure, so a
        server that is down costs the loop one failed call per interval, not one per report.
        """
        if not self.enabled or not self.pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            while self.pending:
                chunk = self.pending[:MAX_METRICS_PER_BATCH]
                self.client.log_batch(self.run_id, metrics=chunk)
                del self.pending[: len(chunk)]
        except Exception as exc:  # noqa: BLE001 - MLflow down or failing: keep the points, train on
            if self.last_error is None:
                log.warning(
                    "MLflow at %s did not take %d metric points (%s); keeping them until it answers",
                    self.tracking_uri, len(self.pending), first_line(exc),
                )  # fmt: skip
            self.last_error = exc
            self._retry_at = time.monotonic() + MLFLOW_RETRY_S
            return False
        if self.last_error is not None:
            log.info("MLflow at %s answers again; the buffered metric points are sent", self.tracking_uri)
            self.last_error = None
        return True

    def pending_rows(self) -> list[list[Any]]:
        """The pending points as JSON rows ``[key, value, timestamp, step]``, for a checkpoint."""
        return [[m.key, m.value, m.timestamp, m.step] for m in self.pending]

    def tags(self) -> dict[str, str]:
        return dict(self.client.get_run(self.run_id).data.tags) if self.enabled else {}

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if self.enabled:
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, str(value))

    def end(self, status: str) -> None:
        """End the run in this process (stops the system metrics thread); best effort when MLflow is down."""
        if self.enabled and self.mlflow.active_run() is not None:
            try:
                self.mlflow.end_run(status=status)
            except Exception as exc:  # noqa: BLE001 - never hide the error that ended the loop
                log.warning("could not end MLflow run %s: %s", self.run_id, first_line(exc))
