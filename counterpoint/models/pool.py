"""The models one replica serves: the default model plus registered models loaded on demand.

A request names its model: the default name (``all-MiniLM-L6-v2``, whichever backend runs it; another
one as ``NAME?backend=B``, torch as ``?backend=torch``), or a *concrete* registry
reference (``models:/NAME/VERSION``; the gateway resolves ``@alias`` before it gets here, see
:mod:`counterpoint.infra.model_refs`). A concrete reference always means the same weights, so a
loaded model never goes stale; the least recently used ones are dropped beyond ``max_models``
(the default model is always kept). Loading happens once per reference even when many requests ask
for it at the same moment.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from counterpoint.errors import NotFound
from counterpoint.models.embedder import TextEmbedder
from counterpoint.models.export import names_default, split_backend
from counterpoint.schemas import ModelCard

M = TypeVar("M")
Loader = Callable[[str], Any]
"""Builds the model of a reference (downloads it first when needed); raises `NotFound`."""


def model_card(name: str, model: Any) -> ModelCard:
    """An embedding model's card carries its dimensions; a reranker's says so in ``kind``. Both say
    which backend runs them."""
    backend = getattr(model, "backend", "torch")
    if isinstance(model, TextEmbedder):
        return ModelCard(id=name, kind="embedding", dimensions=model.dimensions, backend=backend)
    return ModelCard(
        id=name, kind="reranker", context_length=getattr(model, "max_length", None), backend=backend
    )


class ModelPool(Generic[M]):
    """Name -> model, with on-demand loading through ``loader`` and LRU eviction."""

    def __init__(
        self, default_name: str, default: M, *, loader: Loader | None = None, max_models: int = 3
    ) -> None:
        self.default_name = default_name
        self._loader = loader
        self._max_models = max(1, max_models)
        self._loaded: OrderedDict[str, M] = OrderedDict({default_name: default})
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @property
    def names(self) -> list[str]:
        return list(self._loaded)

    def cards(self) -> list[ModelCard]:
        """The loaded models, the default first."""
        return [model_card(name, model) for name, model in list(self._loaded.items())]

    def get(self, name: str | None) -> tuple[str, M]:
        """The model for ``name`` (``None``, or the default's plain name: the default as served, e.g.
        ``all-MiniLM-L6-v2`` when it runs as ``all-MiniLM-L6-v2?backend=openvino``), loading it if
        it is a registry reference or the default with another ``?backend=``."""
        if names_default(name, self.default_name):
            name = self.default_name
        with self._lock:
            if name in self._loaded:
                self._loaded.move_to_end(name)
                return name, self._loaded[name]
            if self._loader is None or not self.loadable(name):
                raise NotFound(
                    f"model '{name}' is not served; available: {self.names} "
                    "(or a registered model as models:/NAME/VERSION or models:/NAME@ALIAS)"
                )
            gate = self._loading.setdefault(name, threading.Lock())
        with gate:  # one load per reference; later callers wait for it and reuse the result
            with self._lock:
                if name in self._loaded:
                    return name, self._loaded[name]
            model: M = self._loader(name)
            with self._lock:
                self._loaded[name] = model
                self._evict()
                self._loading.pop(name, None)
            return name, model

    def loadable(self, name: str) -> bool:
        """A registered model, or the default model with another ``?backend=``: loaded on first use."""
        base = split_backend(name)[0]
        return base.startswith(("models:/", "runs:/")) or base == split_backend(self.default_name)[0]

    async def load_card(self, name: str) -> ModelCard:
        """Make ``name`` ready, loading it off the event loop if needed; its card."""
        served, model = await asyncio.to_thread(self.get, name)
        return model_card(served, model)

    def _evict(self) -> None:
        while len(self._loaded) > self._max_models:
            victim = next(n for n in self._loaded if n != self.default_name)
            del self._loaded[victim]


EmbedderPool = ModelPool[TextEmbedder]
