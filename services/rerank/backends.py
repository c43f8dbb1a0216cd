"""How the gateway reaches the reranker: in-process, or through a Serve handle.

Both satisfy `RerankerBackend` and hold a `ModelPool` of `TextReranker`s: the configured default plus
registered cross-encoders (``models:/NAME/VERSION``) loaded on first use.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from counterpoint.models.pool import Loader, ModelPool
from counterpoint.models.reranker import Scores, TextReranker
from counterpoint.schemas import ModelCard
from counterpoint.services import model_loading
from counterpoint.settings import Settings

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle


@runtime_checkable
class RerankerBackend(Protocol):
    async def rerank(self, query: str, documents: list[str], model: str | None = None) -> Scores: ...

    async def models(self) -> list[ModelCard]: ...

    async def load(self, model: str) -> ModelCard: ...


build_reranker: model_loading.Build[TextReranker] = model_loading.builder(
    TextReranker, lambda s: {"max_length": s.rerank_max_length, "batch_size": s.rerank_batch_size}
)
"""A cross-encoder with the settings' maximum pair length and batch size, run by a backend."""


def reranker_loader(settings: Settings) -> Loader:
    """Loads a registered cross-encoder from MLflow into ``<data_dir>/models/registry`` (with its
    stored export for ``?backend=``), or the configured one with another backend."""
    return model_loading.registry_loader(
        settings, build_reranker, default=settings.rerank_model, default_path=settings.rerank_model_path
    )


class LocalReranker:
    """Scores in this process, off the event loop, one call at a time."""

    def __init__(self, name: str, reranker: TextReranker, *, loader: Loader | None = None) -> None:
        self.pool: ModelPool[TextReranker] = ModelPool(name, reranker, loader=loader)
        self._lock = asyncio.Lock()

    async def rerank(self, query: str, documents: list[str], model: str | None = None) -> Scores:
        _, reranker = await asyncio.to_thread(self.pool.get, model)
        async with self._lock:
            return await asyncio.to_thread(reranker.score, query, documents)

    async def models(self) -> list[ModelCard]:
        return self.pool.cards()

    async def load(self, model: str) -> ModelCard:
        return await self.pool.load_card(model)


class ServeReranker:
    """Calls the `RerankDeployment` through its Ray Serve handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def rerank(self, query: str, documents: list[str], model: str | None = None) -> Scores:
        return await self.handle.rerank.remote(query, documents, model)

    async def models(self) -> list[ModelCard]:
        return await self.handle.models.remote()

    async def load(self, model: str) -> ModelCard:
        return await self.handle.load.remote(model)
