"""How the gateway reaches an embedding model: in-process, or through a Serve handle.

Both satisfy `EmbedderBackend`, so the gateway logic is the same in unit tests (a tiny
in-process model) and in the running stack (the Serve deployment, batched across requests).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from counterpoint.errors import NotFound
from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.schemas import ModelCard

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle


@runtime_checkable
class EmbedderBackend(Protocol):
    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings: ...

    async def models(self) -> list[ModelCard]: ...


def model_card(name: str, embedder: TextEmbedder) -> ModelCard:
    return ModelCard(id=name, kind="embedding", dimensions=embedder.dimensions)


class LocalEmbedder:
    """Runs a `TextEmbedder` in this process, off the event loop."""

    def __init__(self, name: str, embedder: TextEmbedder) -> None:
        self.name = name
        self.embedder = embedder
        self._lock = asyncio.Lock()

    def _check(self, model: str | None) -> None:
        if model not in (None, self.name):
            raise NotFound(f"model '{model}' is not served; available: ['{self.name}']")

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        self._check(model)
        async with self._lock:
            return await asyncio.to_thread(self.embedder.embed, texts)

    async def models(self) -> list[ModelCard]:
        return [model_card(self.name, self.embedder)]


class ServeEmbedder:
    """Calls the `EmbedDeployment` through its Ray Serve handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self.handle = handle

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        return await self.handle.embed.remote(texts, model)

    async def models(self) -> list[ModelCard]:
        return await self.handle.models.remote()
