"""The end of a job on rank 0: the buffered metrics sent, the model logged and registered in MLflow.

While MLflow is unreachable the job waits for it (up to ``tracking_wait_s``), then fails with
:class:`TrackingUnavailable`; resuming the job once MLflow is back finishes it.
Imports: :mod:`.run_logger`, the workers' config and :mod:`counterpoint.infra.tracking` (lazily).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from counterpoint.workers.config import TrainConfig
from counterpoint.workers.train.run_logger import RunLogger, first_line
from counterpoint.workers.trainable import TrainableModel

log = logging.getLogger("counterpoint.workers.train")


class TrackingUnavailable(RuntimeError):
    """MLflow stayed unreachable at the end of a job; resuming the job once it is back finishes it."""


def tracking_reachable(tracking_uri: str) -> bool:
    """Whether the MLflow server answers its health check (stores that are not servers: always)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import httpx

    try:
        return httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def publish_when_reachable(
    loop_config: Mapping[str, Any], config: TrainConfig, *, model: TrainableModel, logger: RunLogger
) -> dict[str, Any]:
    """Send the buffered metrics, then :func:`publish_model`; while MLflow is unreachable, wait for
    it up to ``tracking_wait_s`` (setting train_tracking_wait_s), then fail with `TrackingUnavailable`.

    A failure while the server answers its health check is raised at once (on the second try: the
    first may have raced the server's return), so a real error does not wait out the deadline.
    """
    uri = str(loop_config.get("tracking_uri") or "")
    deadline = time.monotonic() + float(loop_config.get("tracking_wait_s") or 0.0)
    delay, failed_while_up = 1.0, 0
    while True:
        try:
            if not logger.flush() and logger.last_error is not None:
                raise logger.last_error
            return publish_model(loop_config, config, model=model, logger=logger)
        except Exception as exc:
            if tracking_reachable(uri):
                failed_while_up += 1
                if failed_while_up >= 2:
                    raise
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TrackingUnavailable(
                    f"MLflow at {uri} is unreachable ({first_line(exc)}): training finished, but the "
                    f"model and {len(logger.pending)} metric points are not logged; resume the job once "
                    "MLflow is back (it continues from its last checkpoint, in the same run)"
                ) from None
            log.warning("MLflow at %s unreachable; trying again for another %.0f s", uri, remaining)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 30.0)


def publish_model(
    loop_config: Mapping[str, Any], config: TrainConfig, *, model: TrainableModel, logger: RunLogger
) -> dict[str, Any]:
    """Log the model (in its library's format, :meth:`TrainableModel.log_model`) and register it
    under ``config.register_as``.

    Idempotent across retries: the model URI and registered version are kept as run tags and reused.
    """
    if not logger.enabled:
        return {}
    from counterpoint.infra.tracking import register_model

    tags = logger.tags()
    model_uri = tags.get("counterpoint.model_uri")
    if not model_uri:
        model_uri = model.log_model("model")
        logger.set_tags({"counterpoint.model_uri": model_uri, "counterpoint.model_type": config.model_type})
    out: dict[str, Any] = {"model_uri": model_uri}
    if config.register_as:
        version = tags.get("counterpoint.registered_version")
        if not version or tags.get("counterpoint.registered_model") != config.register_as:
            version = register_model(
                model_uri,
                config.register_as,
                str(loop_config["tracking_uri"]),
                tags={"counterpoint.job_id": str(loop_config.get("job_id", "")), "run_id": logger.run_id},
            )
            logger.set_tags(
                {
                    "counterpoint.registered_model": config.register_as,
                    "counterpoint.registered_version": version,
                }
            )
        out.update(
            {
                "registered_model": config.register_as,
                "registered_version": str(version),
                "registered_model_uri": f"models:/{config.register_as}/{version}",
            }
        )
        if config.export is not None:
            out["exports"] = export_version(
                out["registered_model_uri"], config, str(loop_config["tracking_uri"])
            )
    return out


def export_version(ref: str, config: TrainConfig, tracking_uri: str) -> dict[str, dict[str, Any]]:
    """``config.export``'s backends of the registered version (:func:`export_registered`), each once:
    a retried job skips what an earlier attempt already decided. A rejected export does not fail the
    job (the model is registered and serves with torch); its report says why."""
    import tempfile

    from counterpoint.infra.model_exports import export_status
    from counterpoint.workers.export import export_registered

    assert config.export is not None
    reports: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="counterpoint-export-cache-") as cache:
        for backend in config.export.backends:
            status = export_status(ref, backend, tracking_uri)
            if status is not None:
                reports[backend] = {"status": status}
                continue
            report = export_registered(
                ref, backend, tracking_uri=tracking_uri, cache_dir=cache,
                tolerance=config.export.tolerance, sample=config.export.sample,
            )  # fmt: skip
            reports[backend] = {**report.as_dict(), "status": "servable" if report.servable else "rejected"}
    return reports
