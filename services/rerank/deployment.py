"""Ray Serve deployment that scores (query, document) pairs with a cross-encoder, batching callers.

Each call is one query with its candidate documents; `@serve.batch` gathers the calls that arrive
together and scores all their pairs in shared forward passes, per model, then splits them back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from ray import serve

from counterpoint.models.pool import ModelPool, model_card
from counterpoint.models.reranker import Scores, TextReranker
from counterpoint.schemas import ModelCard
from counterpoint.services.rerank.backends import build_reranker, reranker_loader
from counterpoint.settings import Settings


def default_reranker(config: Settings) -> tuple[str, TextReranker]:
    """The configured cross-encoder: a local directory, or a registered ``models:/NAME@ALIAS``."""
    from counterpoint.infra.tracking import concrete_model_ref, is_registry_ref

    assert config.rerank_model is not None
    if config.rerank_model_path is None and is_registry_ref(config.rerank_model):
        ref = concrete_model_ref(config.rerank_model, config.tracking_uri)
        return ref, reranker_loader(config)(ref)
    return config.rerank_model, build_reranker(config.rerank_model_path or config.rerank_model, config)


@serve.deployment(name="rerank", max_ongoing_requests=64)
class RerankDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        config = Settings(**settings)
        name, reranker = default_reranker(config)
        self.pool: ModelPool[TextReranker] = ModelPool(
            name, reranker, loader=reranker_loader(config), max_models=config.embed_max_models
        )

    async def rerank(self, query: str, documents: list[str], model: str | None = None) -> Scores:
        name, _ = await asyncio.to_thread(self.pool.get, model)
        return await self._score_many(query, documents, name)

    async def models(self) -> list[ModelCard]:
        return self.pool.cards()

    async def load(self, model: str) -> ModelCard:
        name, reranker = await asyncio.to_thread(self.pool.get, model)
        return model_card(name, reranker)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _score_many(
        self, queries: list[str], documents: list[list[str]], models: list[str]
    ) -> list[Scores]:
        """Score each call's pairs; calls of one model share forward passes (pairs length-sorted)."""
        out: list[Scores | None] = [None] * len(queries)
        for name in dict.fromkeys(models):
            mine = [i for i, m in enumerate(models) if m == name]
            _, reranker = self.pool.get(name)
            results = await asyncio.to_thread(reranker.score_many, [(queries[i], documents[i]) for i in mine])
            for i, result in zip(mine, results, strict=True):
                out[i] = result
        return [s if s is not None else Scores(np.zeros(0, np.float32), [], []) for s in out]
