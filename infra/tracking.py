"""MLflow adapter: experiments, params, logging sentence-transformers models, the registry and aliases.

Training logs a model with MLflow's ``sentence_transformers`` flavor (works offline: the model is
saved from memory, pip requirements are given, nothing is fetched). In MLflow 3 such a model is a
*logged model* (``models:/m-<id>``) linked to its run; its files hold ``MLmodel`` plus the
sentence-transformers directory ``model.sentence_transformer/``. :func:`resolve_model_uri` downloads
any model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``models:/m-...``, ``runs:/...``) into
a cache and returns the directory ``SentenceTransformer(path)`` loads, which is what the embedding
service needs. Serving follows an alias (:func:`set_alias`), so promoting a model is one call.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from counterpoint.models.paths import is_registry_ref as is_registry_ref  # noqa: E402 - re-exported

SENTENCE_TRANSFORMER_MARKER = "modules.json"
"""A directory holding this file is a saved sentence-transformers model."""

_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_?key|credential)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)[^/@\s]+@", re.IGNORECASE)
_PARAM_MAX_CHARS = 6000  # MLflow's limit on a param value


def client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri)


def local_artifact_root(tracking_uri: str) -> str | None:
    """Where a local SQLite backend keeps artifacts: ``mlartifacts/`` next to the database file.

    MLflow's default for a database backend without a server is ``./mlruns`` in the *current working
    directory*, which scatters artifacts wherever a worker happens to run. ``None`` for servers
    (they decide) and ``file:`` stores (they keep artifacts inside).
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return (Path(database).expanduser().resolve().parent / "mlartifacts").as_uri()


def get_or_create_experiment(name: str, tracking_uri: str) -> str:
    """The id of experiment ``name``, created (with a local artifact root where needed) if missing."""
    mlflow_client = client(tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow_client.create_experiment(name, artifact_location=local_artifact_root(tracking_uri))
    except mlflow.exceptions.MlflowException:  # created concurrently by another job
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _redact(value: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", value)


def redacted(data: Any) -> Any:
    """A copy of a config fit to log as an artifact: secret-looking keys masked, URL credentials too."""
    if isinstance(data, Mapping):
        return {k: "***" if _SECRET_KEY.search(str(k)) else redacted(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [redacted(v) for v in data]
    return _redact(data) if isinstance(data, str) else data


def flatten_params(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"loss": {"scale": 20}}`` -> ``{"loss.scale": "20"}``; secret-looking keys are left out and
    credentials in URLs masked, so a config can be logged as MLflow params as it is."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if _SECRET_KEY.search(str(key)):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = "" if value is None else str(value)
            flat[name] = _redact(text)[:_PARAM_MAX_CHARS]
    return flat


def log_sentence_transformer(model: Any, *, name: str = "model", **kwargs: Any) -> Any:
    """Log ``model`` to the active run with the sentence_transformers flavor; returns the ``ModelInfo``."""
    from importlib.metadata import version

    requirements = [
        f"sentence-transformers=={version('sentence-transformers')}",
        f"torch=={version('torch')}",
    ]
    return mlflow.sentence_transformers.log_model(model, name=name, pip_requirements=requirements, **kwargs)


def log_model_directory(model: Any, *, name: str = "model") -> str:
    """Save a model with its own ``save`` (a sentence-transformers ``CrossEncoder``) and log the
    directory as the active run's artifacts; returns the ``runs:/`` URI the registry accepts.

    MLflow's sentence_transformers flavor takes bi-encoders only; the saved directory is what
    `resolve_model_uri` hands back to the serving side, which loads it with ``CrossEncoder(path)``.
    """
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_model_directory needs an active MLflow run")
    with tempfile.TemporaryDirectory(prefix="counterpoint-model-") as tmp:
        model.save(tmp)
        mlflow.log_artifacts(tmp, artifact_path=name)
    return f"runs:/{run.info.run_id}/{name}"


def register_model(
    model_uri: str, name: str, tracking_uri: str, *, tags: Mapping[str, str] | None = None
) -> str:
    """Register ``model_uri`` as a new version of ``name`` (created if missing); returns the version.

    A ``runs:/RUN/PATH`` URI of plain artifacts (a cross-encoder directory: no MLflow flavor, so no
    logged model) is registered with the run's artifact location as the version's source.
    """
    if model_uri.startswith("runs:/"):
        mlflow_client = client(tracking_uri)
        run_id, _, path = model_uri.removeprefix("runs:/").partition("/")
        source = f"{mlflow_client.get_run(run_id).info.artifact_uri}/{path}"
        try:
            mlflow_client.create_registered_model(name)
        except mlflow.exceptions.MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        created = mlflow_client.create_model_version(name, source, run_id=run_id, tags=dict(tags or {}))
        return str(created.version)
    mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(model_uri, name, tags=dict(tags or {}))
    return str(version.version)


def set_alias(name: str, alias: str, version: str | int, tracking_uri: str) -> None:
    """Point ``models:/name@alias`` at ``version`` (e.g. promote a version to ``champion``)."""
    client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def find_sentence_transformer_dir(root: Path) -> Path:
    """``root`` or the shallowest directory below it holding ``modules.json``."""
    if (root / SENTENCE_TRANSFORMER_MARKER).is_file():
        return root
    found = sorted(root.rglob(SENTENCE_TRANSFORMER_MARKER), key=lambda p: len(p.parts))
    if not found:
        raise FileNotFoundError(
            f"no sentence-transformers model ({SENTENCE_TRANSFORMER_MARKER}) under {root}"
        )
    return found[0].parent


_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))?/?$")


def _cache_key(uri: str, tracking_uri: str) -> str:
    """A directory name for ``uri`` that changes when an alias moves to another version."""
    match = _MODELS_URI.match(uri)
    if match and (match["alias"] or match["version"]):
        name, version = match["name"], match["version"]
        if match["alias"]:
            version = client(tracking_uri).get_model_version_by_alias(name, match["alias"]).version
        label = f"{name}-v{version}"
    else:
        label = uri.rstrip("/").rsplit("/", 1)[-1] or "model"
    digest = hashlib.sha256(f"{tracking_uri}|{label}|{uri if not match else ''}".encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}-{digest}"


def resolve_model_uri(uri: str, tracking_uri: str, cache_dir: str | Path) -> Path:
    """A local directory ``SentenceTransformer(path)`` loads, for a model URI, a local path or a
    packaged model name (``all-MiniLM-L6-v2``).

    ``models:/NAME@alias`` is resolved to its current version first, so the cache holds one
    directory per version and moving the alias downloads the new one. Downloads land in a temporary
    directory renamed into place, so concurrent replicas never see half a model.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme == "file" else uri).expanduser()
        if local.is_dir():
            return find_sentence_transformer_dir(local)
        if parsed.scheme == "file":
            raise FileNotFoundError(f"no model directory at {uri}")
        from counterpoint.models.paths import resolve_model_path

        return find_sentence_transformer_dir(resolve_model_path(uri))  # a packaged name, or NotFound
    target = Path(cache_dir).expanduser() / _cache_key(uri, tracking_uri)
    return find_sentence_transformer_dir(
        _download_once(uri, tracking_uri, target, find_sentence_transformer_dir)
    )


def _download_once(uri: str, tracking_uri: str, target: Path, check: Callable[[Path], object]) -> Path:
    """``target``, downloading ``uri``'s artifacts into it unless an earlier call did.

    The download lands in a temporary sibling, ``check`` refuses what is not the expected kind of
    model, and a rename puts it in place: concurrent replicas never see half a model, and the
    loser of a race uses the winner's copy.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.download-", dir=target.parent))
    try:
        mlflow.set_tracking_uri(tracking_uri)  # models:/ URIs resolve through the registry URI
        mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(staging), tracking_uri=tracking_uri
        )
        check(staging)
        try:
            staging.rename(target)
        except OSError:  # another process won the race; use its copy
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_causal_lm(ref: str, tracking_uri: str, cache_dir: str | Path) -> Path:
    """The local directory of a registered causal LM, downloaded once per concrete version, for
    ``counterpoint.decoding.load_causal_lm``.

    ``models:/NAME@ALIAS`` is resolved to its version first (`concrete_model_ref`: `NotFound` /
    `Unavailable` with the reason), so moving the alias downloads the new one on the next load and
    never serves a stale copy. Its artifacts may be a plain ``save_pretrained`` directory or MLflow's
    transformers-flavor layout.
    """
    from counterpoint.decoding.loading import find_causal_lm_dir
    from counterpoint.errors import CounterpointError, NotFound

    concrete = concrete_model_ref(ref, tracking_uri)
    digest = hashlib.sha256(f"{tracking_uri}|{concrete}".encode()).hexdigest()[:10]
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", concrete.split(":/", 1)[1]).strip("_") or "model"
    try:
        return _download_once(
            concrete, tracking_uri, Path(cache_dir).expanduser() / f"{label}-{digest}", find_causal_lm_dir
        )
    except CounterpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow reports a missing artifact in many ways
        raise NotFound(f"model '{ref}' could not be downloaded from MLflow: {str(exc)[:300]}") from None


# --- model references the services accept ------------------------------------------------------


def local_model(ref: str, tracking_uri: str | None, cache_dir: str | Path, *, where: str) -> str:
    """``ref`` as it is, or for a ``models:/`` / ``runs:/`` reference the local directory it was
    downloaded to (:func:`resolve_model_uri`), for code that loads models from paths.

    ``where`` names what gave the reference (``config field 'model'``, ``--model``): a reference
    without a tracking URI, or one the registry does not resolve, is an `InvalidInput` naming it.
    """
    from counterpoint.errors import InvalidInput

    if not is_registry_ref(ref):
        return ref
    if not tracking_uri:
        raise InvalidInput(f"{where}: {ref} is an MLflow reference, and no tracking URI was given")
    try:
        return str(resolve_model_uri(ref, tracking_uri, cache_dir))
    except Exception as exc:  # noqa: BLE001 - MLflow reports a missing model in many shapes
        raise InvalidInput(f"{where}: {registry_error(exc, ref)}") from exc


def registry_error(exc: Exception, what: str) -> Exception:
    """`NotFound` for a missing model/version/alias, `Unavailable` when MLflow cannot be reached."""
    from counterpoint.errors import NotFound, Unavailable

    code = getattr(exc, "error_code", "")
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
        return NotFound(f"{what} does not exist in the MLflow model registry")
    return Unavailable(f"the MLflow model registry did not answer ({type(exc).__name__}): {str(exc)[:200]}")


def concrete_model_ref(ref: str, tracking_uri: str) -> str:
    """``models:/NAME@alias`` and ``models:/NAME`` (latest) -> ``models:/NAME/VERSION``; checks it exists.

    A concrete reference always names the same weights, which is what a collection must remember
    (its vectors came from those weights) and what a replica can cache forever.
    """
    from counterpoint.errors import InvalidInput, NotFound

    match = _MODELS_URI.match(ref)
    if ref.startswith("runs:/") or (match and ref.startswith("models:/m-")):
        return ref
    if not match:
        raise InvalidInput(
            f"model '{ref}' is not a registry reference (models:/NAME/VERSION or models:/NAME@ALIAS)"
        )
    name, alias, version = match["name"], match["alias"], match["version"]
    mlflow_client = client(tracking_uri)
    try:
        if alias:
            version = mlflow_client.get_model_version_by_alias(name, alias).version
        elif version:
            mlflow_client.get_model_version(name, version)
        else:
            latest = mlflow_client.search_model_versions(
                f"name = '{name}'", max_results=1, order_by=["version_number DESC"]
            )
            if not latest:
                raise NotFound(f"registered model '{name}' does not exist or has no version")
            version = latest[0].version
    except mlflow.exceptions.MlflowException as exc:
        what = (
            f"alias '{alias}' of model '{name}'"
            if alias
            else f"version {version} of model '{name}'"
            if version
            else f"model '{name}'"
        )
        raise registry_error(exc, what) from None
    return f"models:/{name}/{version}"


def fetch_model(ref: str, tracking_uri: str, cache_dir: str | Path) -> Path:
    """`resolve_model_uri` for services: any failure to find or download the model is a `NotFound`
    that names it (MLflow reports a missing model in many shapes)."""
    from counterpoint.errors import CounterpointError, NotFound

    try:
        return resolve_model_uri(ref, tracking_uri, cache_dir)
    except CounterpointError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise NotFound(f"model '{ref}' could not be loaded from MLflow: {str(exc)[:300]}") from None
