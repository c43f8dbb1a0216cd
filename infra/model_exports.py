"""Exported backends of registered models, kept in MLflow beside the model version they came from.

An export (:mod:`counterpoint.workers.export`) writes the graph files as artifacts of the version's
run under ``backends/<backend>/`` and tags the version ``counterpoint.export.<backend>`` with
``servable`` or ``rejected: <why>``. A replica serving ``models:/NAME/VERSION?backend=<backend>``
downloads those files (:func:`fetch_export`) instead of exporting at start-up, and refuses a backend
that was never exported or did not pass the quality check.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from counterpoint.errors import CounterpointError, InvalidInput, NotFound
from counterpoint.infra.tracking import (
    _MODELS_URI,
    _download_once,
    client,
    concrete_model_ref,
    registry_error,
)
from counterpoint.models.export import MANIFEST, Backend

SERVABLE = "servable"
EXPORT_TAG_PREFIX = "counterpoint.export."


def export_tag(backend: Backend) -> str:
    return f"{EXPORT_TAG_PREFIX}{backend}"


def artifact_path(backend: Backend) -> str:
    return f"backends/{backend}"


def model_version(ref: str, tracking_uri: str) -> tuple[str, str, str]:
    """``(name, version, run_id)`` of a registered model version (an alias is resolved first)."""
    concrete = concrete_model_ref(ref, tracking_uri)
    match = _MODELS_URI.match(concrete)
    if not match or not match["version"]:
        raise InvalidInput(
            f"model '{ref}': exported backends belong to a registered model version (models:/NAME/VERSION)"
        )
    try:
        version = client(tracking_uri).get_model_version(match["name"], match["version"])
    except Exception as exc:  # noqa: BLE001 - MLflow reports a missing version in many shapes
        raise registry_error(exc, concrete) from None
    if not version.run_id:
        raise InvalidInput(f"model '{concrete}' has no MLflow run to keep its exported backends in")
    return match["name"], match["version"], version.run_id


def export_status(ref: str, backend: Backend, tracking_uri: str) -> str | None:
    """The version's tag for ``backend``: ``servable``, ``rejected: ...``, or None (never exported)."""
    name, version, _ = model_version(ref, tracking_uri)
    return client(tracking_uri).get_model_version(name, version).tags.get(export_tag(backend))


def fetch_export(ref: str, backend: Backend, tracking_uri: str, cache_dir: str | Path) -> Path:
    """The local directory of ``ref``'s servable ``backend`` export, downloaded once per version."""
    name, version, run_id = model_version(ref, tracking_uri)
    status = client(tracking_uri).get_model_version(name, version).tags.get(export_tag(backend))
    if status != SERVABLE:
        why = "was never exported" if status is None else f"was not registered as servable ({status})"
        raise NotFound(
            f"models:/{name}/{version} has no servable '{backend}' backend: it {why}; run "
            f"`counterpoint models export models:/{name}/{version} --backend {backend}`"
        )
    digest = hashlib.sha256(f"{tracking_uri}|{name}|{version}|{backend}".encode()).hexdigest()[:10]
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{name}-v{version}-{backend}")
    target = Path(cache_dir).expanduser() / f"{label}-{digest}"

    def check(directory: Path) -> None:  # the download keeps the artifact folder's name
        if not (directory / backend / MANIFEST).is_file():
            raise FileNotFoundError(f"no {MANIFEST} in the '{backend}' artifacts of models:/{name}/{version}")

    try:
        return (
            _download_once(f"runs:/{run_id}/{artifact_path(backend)}", tracking_uri, target, check) / backend
        )
    except CounterpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow reports a missing artifact in many ways
        raise NotFound(
            f"the '{backend}' files of models:/{name}/{version} could not be downloaded: {str(exc)[:300]}"
        ) from None
