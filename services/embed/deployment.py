"""Ray Serve deployment that embeds text with the platform's bi-encoders, batching concurrent calls.

Concurrent callers (HTTP requests, ingest steps) each send a list of texts and a model name;
`@serve.batch` gathers the calls that arrive within a few milliseconds, the texts of each model are
embedded together (length-sorted inside `TextEmbedder`, so padding stays small) and split back per
caller. Besides the default model, each replica loads registered models (``models:/NAME/VERSION``)
on first use and keeps the most recently used ones (`EmbedderPool`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ray import serve

from counterpoint.models.embedder import Embeddings
from counterpoint.schemas import ModelCard
from counterpoint.services.embed.backends import default_embedder, serving_pool
from counterpoint.settings import Settings

__all__ = ["EmbedDeployment", "default_embedder"]


@serve.deployment(name="embed", max_ongoing_requests=256)
class EmbedDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        config = Settings(**settings)
        self.pool = serving_pool(config)
        self._embed_many.set_max_batch_size(256)
        self._embed_many.set_batch_wait_timeout_s(config.embed_batch_wait_s)
        self.max_text_tokens = config.limits.max_text_tokens

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        name, embedder = await asyncio.to_thread(self.pool.get, model)  # loads a registered model once
        embedder.check_token_limit(texts, self.max_text_tokens)  # before batching: fails this call only
        return await self._embed_many(texts, name)

    async def models(self) -> list[ModelCard]:
        return self.pool.cards()

    async def load(self, model: str) -> ModelCard:
        return await self.pool.load_card(model)

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.005)
    async def _embed_many(self, calls: list[list[str]], models: list[str]) -> list[Embeddings]:
        out: list[Embeddings | None] = [None] * len(calls)
        for name in dict.fromkeys(models):  # one pass per model in this batch, in arrival order
            mine = [i for i, m in enumerate(models) if m == name]
            _, embedder = self.pool.get(name)
            flat = [text for i in mine for text in calls[i]]
            result = await asyncio.to_thread(embedder.embed, flat)
            for i, part in zip(mine, result.split([len(calls[i]) for i in mine]), strict=True):
                out[i] = part
        return [e for e in out if e is not None]
