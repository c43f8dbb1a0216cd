"""How a Serve replica builds the models it serves: from a path, or registered in MLflow.

Shared by the embed and rerank services: each passes its ``build(path, settings)`` (a
``TextEmbedder`` or a ``TextReranker`` with the settings' sizes). A registered model
(``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``runs:/...``) is downloaded into
``<data_dir>/models/registry`` first. May import the counterpoint base and, lazily,
``counterpoint.infra.tracking`` (MLflow is slow to import); nothing from the gateway.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from counterpoint.settings import Settings

M = TypeVar("M")
Build = Callable[[str, Settings], M]
"""Builds a model from a local directory (or a packaged model's name) with the settings' sizes."""


def builder(model_class: Callable[..., M], sizes: Callable[[Settings], dict[str, Any]]) -> Build[M]:
    """``model_class(path, **sizes(settings))`` on all the cores this process has.

    Ray sets ``OMP_NUM_THREADS`` to an actor's CPU share (1 for these replicas), so torch's
    threads are set from ``settings.torch_threads`` or the machine's core count.
    """

    def build(path: str, settings: Settings) -> M:
        return model_class(path, **sizes(settings), torch_threads=settings.torch_threads or os.cpu_count())

    return build


def registry_loader(settings: Settings, build: Build[M]) -> Callable[[str], M]:
    """A model pool's loader: fetch a registered model from MLflow, then ``build`` it from its directory."""

    def load(ref: str) -> M:
        from counterpoint.infra.tracking import fetch_model

        return build(str(fetch_model(ref, settings.tracking_uri, settings.models_dir / "registry")), settings)

    return load


def default_model(name: str, path: str | None, settings: Settings, build: Build[M]) -> tuple[str, M]:
    """The model a replica serves by default and the name it is served under.

    ``path`` (a local copy) wins; otherwise a registry reference ``name`` is pinned to its concrete
    ``models:/NAME/VERSION`` (the served name) and fetched; any other ``name`` is built as is.
    """
    if path is None:
        from counterpoint.infra.tracking import concrete_model_ref, is_registry_ref

        if is_registry_ref(name):
            ref = concrete_model_ref(name, settings.tracking_uri)
            return ref, registry_loader(settings, build)(ref)
    return name, build(path or name, settings)
