"""The query lane: search queries embedded inside the gateway process, apart from the bulk embed replica.

Why: a search embeds one short text, but through the embed replica it pays two Ray hops (gateway →
replica → gateway) and waits behind whatever the replica is encoding, so an ingest batch of 64
abstracts (seconds on a small CPU) stalls every search behind it. The lane keeps a copy of the
served models in the gateway and encodes queries there, so ingest and ``/v1/embeddings`` keep the
replica and a search never queues behind them; the OS shares the cores between the two processes.

Batching is continuous, without a timer: queries that arrive while a batch is encoding wait for
it and then go together (up to ``max_batch`` texts of one model), so one client pays no batch wait
and many clients get batched forward passes. It satisfies `EmbedderBackend`.

Threads follow the load: a batch of several queries while the embed replica is idle uses
``idle_threads`` (all cores), since nothing else wants them; a lone query, or any batch while the
replica has work (``busy()``: an ingest or ``/v1/embeddings`` call in flight), uses
``busy_threads`` (1). A lone short query gains nothing from a second thread (one client's p50 was
2.25× in-process with two threads, 1.67× with one), and an ingest keeps the other core.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from counterpoint.models.embedder import Embeddings, TextEmbedder
from counterpoint.models.pool import EmbedderPool
from counterpoint.schemas import ModelCard
from counterpoint.services.embed.backends import serving_pool
from counterpoint.settings import Settings


@dataclass(slots=True)
class _Call:
    texts: list[str]
    model: str
    done: asyncio.Future[Embeddings] = field(repr=False)


class QueryLane:
    """Micro-batched embedding of search queries in this process, one forward pass at a time."""

    MIN_TEXTS_FOR_ALL_CORES = 4
    """Smaller batches encode on ``busy_threads``: splitting a few short texts costs more than it saves."""

    def __init__(
        self,
        pool: EmbedderPool,
        *,
        max_batch: int = 32,
        max_text_tokens: int = 8192,
        busy: Callable[[], bool] = lambda: False,
        busy_threads: int | None = None,
        idle_threads: int | None = None,
    ) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self.max_text_tokens = max_text_tokens
        self.busy = busy
        self.busy_threads = busy_threads
        self.idle_threads = idle_threads
        self.threads_used: deque[int] = deque(maxlen=64)  # threads of the latest passes (tests read it)
        self._waiting: list[_Call] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # forward passes run (tests and benches read it)

    @classmethod
    def serving(cls, settings: Settings, busy: Callable[[], bool] = lambda: False) -> QueryLane:
        """A lane holding the models the embed replica serves (the default one loaded now).

        ``busy``: whether the replica has work now (then the lane keeps to ``query_lane_threads``).
        """
        return cls(
            serving_pool(settings),
            max_batch=settings.query_lane_max_batch,
            max_text_tokens=settings.limits.max_text_tokens,
            busy=busy,
            busy_threads=settings.query_lane_threads,
            idle_threads=settings.torch_threads or os.cpu_count(),
        )

    def _threads(self, texts: int) -> int | None:
        if texts < self.MIN_TEXTS_FOR_ALL_CORES or self.busy():
            return self.busy_threads
        return self.idle_threads

    def _encode(self, embedder: TextEmbedder, texts: list[str], threads: int | None) -> Embeddings:
        """One forward pass on a worker thread, with ``threads`` threads (None: as they are)."""
        if threads is not None:
            embedder.set_threads(threads)
        self.threads_used.append(embedder.threads)
        return embedder.embed(texts)

    async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
        if model is None or model in self.pool.names:
            name, embedder = self.pool.get(model)
        else:  # a registered model not loaded yet: fetched and loaded once, off the event loop
            name, embedder = await asyncio.to_thread(self.pool.get, model)
        embedder.check_token_limit(texts, self.max_text_tokens)
        call = _Call(list(texts), name, asyncio.get_running_loop().create_future())
        self._waiting.append(call)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await call.done

    def _next_batch(self) -> list[_Call]:
        """The oldest call's model: its waiting calls, in arrival order, up to ``max_batch`` texts."""
        model = self._waiting[0].model
        batch: list[_Call] = []
        size = 0
        for call in self._waiting:
            if call.model != model or (batch and size + len(call.texts) > self.max_batch):
                continue
            batch.append(call)
            size += len(call.texts)
        self._waiting = [call for call in self._waiting if call not in batch]
        return batch

    async def _drain(self) -> None:
        while self._waiting:
            batch = self._next_batch()
            try:
                _, embedder = self.pool.get(batch[0].model)
                flat = [text for call in batch for text in call.texts]
                threads = self._threads(len(flat))
                result = await asyncio.to_thread(self._encode, embedder, flat, threads)
                self.batches += 1
            except Exception as exc:  # every caller in the batch gets the error, the lane goes on
                for call in batch:
                    if not call.done.done():
                        call.done.set_exception(exc)
                continue
            for call, part in zip(batch, result.split([len(c.texts) for c in batch]), strict=True):
                if not call.done.done():  # a cancelled caller (client gone) is skipped
                    call.done.set_result(part)

    async def models(self) -> list[ModelCard]:
        return self.pool.cards()

    async def load(self, model: str) -> ModelCard:
        return await self.pool.load_card(model)
