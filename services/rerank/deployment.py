"""Ray Serve deployment that scores (query, document) pairs with a cross-encoder, batching callers.

Each call is one query with its candidate documents; `@serve.batch` gathers the calls that arrive
together and scores all their pairs in shared forward passes, per model, then splits them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import numpy as np
from ray import serve

from counterpoint.errors import CounterpointError, Unavailable
from counterpoint.models.pool import ModelPool
from counterpoint.models.reranker import Scores, TextReranker
from counterpoint.schemas import ModelCard
from counterpoint.services.model_loading import default_model
from counterpoint.services.rerank.backends import build_reranker, reranker_loader
from counterpoint.settings import Settings


def default_reranker(config: Settings) -> tuple[str, TextReranker]:
    """The configured cross-encoder: a local directory, or a registered ``models:/NAME@ALIAS``."""
    assert config.rerank_model is not None
    return default_model(
        config.rerank_model, config.rerank_model_path, config.rerank_backend, config, build_reranker
    )


RETRY_S = 10.0


@serve.deployment(name="rerank", max_ongoing_requests=64)
class RerankDeployment:
    """Serves the configured cross-encoder. A registered one that does not exist yet (the loop trains
    it after the platform started) is retried on use, at most every ``RETRY_S``: the replica stays up
    and answers 503 meanwhile, instead of failing the whole Serve application."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.config = Settings(**settings)
        self._pool: ModelPool[TextReranker] | None = None
        self._error = ""
        self._tried = -RETRY_S
        with contextlib.suppress(Unavailable):  # not there yet: the replica still starts
            self._ensure()

    def _ensure(self) -> ModelPool[TextReranker]:
        if self._pool is None and time.monotonic() - self._tried >= RETRY_S:
            self._tried = time.monotonic()
            try:
                name, reranker = default_reranker(self.config)
            except CounterpointError as exc:
                self._error = exc.message
            else:
                self._pool = ModelPool(
                    name,
                    reranker,
                    loader=reranker_loader(self.config),
                    max_models=self.config.embed_max_models,
                )
        if self._pool is None:
            raise Unavailable(f"the reranker {self.config.rerank_model} is not available yet: {self._error}")
        return self._pool

    @property
    def pool(self) -> ModelPool[TextReranker]:
        return self._ensure()

    async def rerank(self, query: str, documents: list[str], model: str | None = None) -> Scores:
        pool = await asyncio.to_thread(self._ensure)
        name, _ = await asyncio.to_thread(pool.get, model)
        return await self._score_many(query, documents, name)

    async def models(self) -> list[ModelCard]:
        try:
            return (await asyncio.to_thread(self._ensure)).cards()
        except Unavailable:
            return []

    async def load(self, model: str) -> ModelCard:
        return await (await asyncio.to_thread(self._ensure)).load_card(model)

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
