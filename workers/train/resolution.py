"""A config's paths and registry models made local, so every worker finds them.

:func:`resolve_paths` makes data/eval/model paths absolute; :func:`resolve_registry_models`
downloads the ``models:/NAME@alias`` (or ``runs:/``) models a config names and pins the versions.
Imports: the workers' config, :mod:`counterpoint.errors` and (lazily) :mod:`counterpoint.infra.tracking`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from counterpoint.errors import InvalidInput
from counterpoint.workers.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]


def _locate(value: str, bases: list[Path]) -> str:
    """``value`` made absolute against the first base where it (or its ``.gz`` sibling) exists."""
    path = Path(value).expanduser()
    if path.is_absolute() or "://" in value:
        return value
    for base in bases:
        candidate = base / path
        if candidate.exists() or candidate.with_name(candidate.name + ".gz").exists():
            return str(candidate.resolve())
    return value


def resolve_paths(config: TrainConfig, *, config_dir: Path | None = None) -> TrainConfig:
    """Absolute data/eval/model paths, so workers find them whatever their working directory.

    Relative paths are tried against the current directory, the config file's directory, then the
    repository root (so the examples' ``counterpoint/data/...`` work from anywhere).
    """
    bases = [Path.cwd()] + ([config_dir] if config_dir else []) + [REPO_ROOT]
    data = config.data.model_copy(update={"path": _locate(config.data.path, bases)})
    updates: dict[str, Any] = {"data": data}
    eval_config = config.eval
    if eval_config.sts:
        eval_config = eval_config.model_copy(update={"sts": _locate(eval_config.sts, bases)})
    if eval_config.retrieval:
        retrieval = eval_config.retrieval.model_copy(
            update={"path": _locate(eval_config.retrieval.path, bases)}
        )
        eval_config = eval_config.model_copy(update={"retrieval": retrieval})
    if eval_config.rerank:
        rerank = eval_config.rerank.model_copy(update={"path": _locate(eval_config.rerank.path, bases)})
        eval_config = eval_config.model_copy(update={"rerank": rerank})
    updates["eval"] = eval_config
    if (Path.cwd() / config.model).is_dir() or (config_dir and (config_dir / config.model).is_dir()):
        updates["model"] = _locate(config.model, bases)
    return config.model_copy(update=updates)


def resolve_registry_models(
    config: TrainConfig, tracking_uri: str, cache_dir: Path, pins: dict[str, str] | None = None
) -> TrainConfig:
    """Download the ``models:/NAME@alias`` (or ``runs:/``) models a config names (base model, mining
    retriever, rerank first stage) into ``cache_dir``; the config then points at local directories.

    So a reranker job can mine and evaluate with the bi-encoder the loop just promoted. ``pins``
    (config field -> ``models:/NAME/VERSION``) is filled with the version each alias named; a job
    keeps it and passes it back when it resumes, so moving the alias meanwhile changes nothing.
    """
    from counterpoint.errors import CounterpointError
    from counterpoint.infra.tracking import concrete_model_ref, is_registry_ref, local_model

    pins = {} if pins is None else pins

    def local(ref: str, field: str) -> str:
        where = f"config field '{field}'"
        if is_registry_ref(ref) and field not in pins:
            try:
                pins[field] = concrete_model_ref(ref, tracking_uri)
            except CounterpointError as exc:
                raise InvalidInput(f"{where}: {exc.message}") from exc
        return local_model(pins.get(field, ref), tracking_uri, cache_dir, where=where)

    updates: dict[str, Any] = {"model": local(config.model, "model")}
    spec = config.data.hard_negatives
    if spec is not None:
        mined = spec.model_copy(update={"model": local(spec.model, "data.hard_negatives.model")})
        updates["data"] = config.data.model_copy(update={"hard_negatives": mined})
    if config.eval.rerank is not None:
        rerank = config.eval.rerank
        rerank = rerank.model_copy(update={"retriever": local(rerank.retriever, "eval.rerank.retriever")})
        updates["eval"] = config.eval.model_copy(update={"rerank": rerank})
    return config.model_copy(update=updates)
