"""Ray Serve deployment that embeds text with one bi-encoder, batching concurrent calls.

Concurrent callers (HTTP requests, ingest steps) each send a list of texts; `@serve.batch`
gathers the calls that arrive within a few milliseconds, the texts are embedded together
(length-sorted inside `TextEmbedder`, so padding stays small) and split back per caller.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ray import serve

from counterpoint.errors import NotFound
from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.schemas import ModelCard
from counterpoint.services.embed.backends import model_card
from counterpoint.settings import Settings


@serve.deployment(name="embed", max_ongoing_requests=256)
class EmbedDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        config = Settings(**settings)
        self.name = config.embed_model
        self.embedder = TextEmbedder(
            config.embed_model_path or config.embed_model,
            max_seq_length=config.max_seq_length,
            batch_size=config.embed_max_batch_size,
            # Ray sets OMP_NUM_THREADS to the actor's CPU share (1 here); use the cores we have.
            torch_threads=config.torch_threads or os.cpu_count(),
        )
        self._embed_many.set_max_batch_size(256)
        self._embed_many.set_batch_wait_timeout_s(config.embed_batch_wait_s)

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        if model not in (None, self.name):
            raise NotFound(f"model '{model}' is not served; available: ['{self.name}']")
        return await self._embed_many(texts)

    async def models(self) -> list[ModelCard]:
        return [model_card(self.name, self.embedder)]

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.005)
    async def _embed_many(self, calls: list[list[str]]) -> list[Embeddings]:
        flat = [text for texts in calls for text in texts]
        result = await asyncio.to_thread(self.embedder.embed, flat)
        out, start = [], 0
        for texts in calls:
            end = start + len(texts)
            out.append(Embeddings(result.vectors[start:end], result.token_counts[start:end]))
            start = end
        return out
