"""How a Serve replica builds the models it serves: from a path, or registered in MLflow, run by a backend.

Shared by the embed and rerank services: each passes its ``build(path, settings, backend, export_dir)``
(a ``TextEmbedder`` or a ``TextReranker`` with the settings' sizes). A served name may end in
``?backend=NAME`` (:func:`counterpoint.models.export.split_backend`). A registered model
(``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/...``) is downloaded into
``<data_dir>/models/registry`` first, with the export stored beside its version for a backend other
than torch (:func:`counterpoint.infra.model_exports.fetch_export`); the configured default model is
exported into ``export_cache_dir`` (``<data_dir>/models/exported``) on first use instead. May import the counterpoint base
and, lazily, ``counterpoint.infra`` (MLflow is slow to import); nothing from the gateway.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from counterpoint.models.export import MANIFEST, auto_backend, split_backend, with_backend
from counterpoint.models.paths import is_registry_ref, resolve_model_path
from counterpoint.settings import DEFAULT_EMBED_MODEL, Backend, Settings

M = TypeVar("M", covariant=True)


class Build(Protocol[M]):
    """Builds a model from a local directory (or a packaged model's name) with the settings' sizes,
    run by ``backend`` from the exported graph in ``export_dir``."""

    def __call__(
        self, path: str, settings: Settings, backend: Backend = "torch", export_dir: Path | None = None
    ) -> M: ...


def builder(model_class: Callable[..., M], sizes: Callable[[Settings], dict[str, Any]]) -> Build[M]:
    """``model_class(path, **sizes(settings), backend=..., export_dir=...)`` on all the cores this process has.

    Ray sets ``OMP_NUM_THREADS`` to an actor's CPU share (1 for these replicas), so torch's (and the
    exported runtimes') threads are set from ``settings.torch_threads`` or the machine's core count.
    """

    def build(path: str, settings: Settings, backend: Backend = "torch", export_dir: Path | None = None) -> M:
        return model_class(
            path,
            **sizes(settings),
            backend=backend,
            export_dir=export_dir,
            torch_threads=settings.torch_threads or os.cpu_count(),
        )

    return build


def local_export_dir(settings: Settings, name_or_path: str, backend: Backend) -> Path:
    """Where a packaged or local model's ``backend`` export is kept: one directory per model and backend."""
    source = str(resolve_model_path(name_or_path).resolve())
    label = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(source).name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:10]
    return settings.exports_dir / f"{label}-{digest}" / backend


def default_embed_backend(settings: Settings) -> Backend:
    """``embed_backend`` with ``auto`` decided (:func:`auto_backend`)."""
    if settings.embed_backend != "auto":
        return settings.embed_backend
    return auto_backend(settings.embed_model == DEFAULT_EMBED_MODEL and settings.embed_model_path is None)


def default_export_pending(settings: Settings) -> bool:
    """Whether the default embedding model's first load would export it (a backend other than torch,
    a local model, no export there yet); a registered model's export is stored with its version."""
    backend = default_embed_backend(settings)
    path, name = settings.embed_model_path, settings.embed_model
    if backend == "torch" or (path is None and is_registry_ref(name)):
        return False
    return not (local_export_dir(settings, path or name, backend) / MANIFEST).is_file()


def load_served(
    name: str, settings: Settings, build: Build[M], *, default: str | None, default_path: str | None
) -> M:
    """The model a served name means: a registered model (fetched from MLflow, with its stored export
    for ``?backend=``) or a local one (``default_path`` stands in for the ``default`` name)."""
    base, backend = split_backend(name)
    if is_registry_ref(base):
        from counterpoint.infra.model_exports import fetch_export
        from counterpoint.infra.tracking import fetch_model

        cache = settings.models_dir / "registry"
        path = fetch_model(base, settings.tracking_uri, cache)
        exported = None if backend == "torch" else fetch_export(base, backend, settings.tracking_uri, cache)
        return build(str(path), settings, backend, exported)
    local = default_path if base == default and default_path else base
    exported = None if backend == "torch" else local_export_dir(settings, local, backend)
    return build(local, settings, backend, exported)


def registry_loader(
    settings: Settings, build: Build[M], *, default: str | None = None, default_path: str | None = None
) -> Callable[[str], M]:
    """A model pool's loader: any servable name on first use (a registered model, or the default
    model with another ``?backend=``)."""
    return lambda name: load_served(name, settings, build, default=default, default_path=default_path)


def default_model(
    name: str, path: str | None, backend: Backend, settings: Settings, build: Build[M]
) -> tuple[str, M]:
    """The model a replica serves by default and the name it is served under.

    ``path`` (a local copy) wins; otherwise a registry reference ``name`` is pinned to its concrete
    ``models:/NAME/VERSION`` and fetched; any other ``name`` is built as is. The served name ends in
    ``?backend=`` unless ``backend`` is torch.
    """
    if path is None and is_registry_ref(name):
        from counterpoint.infra.tracking import concrete_model_ref

        name = concrete_model_ref(name, settings.tracking_uri)
    served = with_backend(name, backend)
    return served, load_served(served, settings, build, default=split_backend(name)[0], default_path=path)
