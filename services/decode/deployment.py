"""Ray Serve deployment that generates text with one causal LM, streaming text deltas.

`complete_stream` is an async generator: called through a handle with
``.options(stream=True)`` it reaches the caller as an async iterator of `DecodeEvent`s.
Generation is CPU-bound, so a replica takes few requests at once (``max_ongoing_requests``)
and their tokens take turns (see `LocalDecoder`); cancelling the caller's iterator (a client
that disconnected) cancels this generator, which stops its generation thread.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from ray import serve

from counterpoint.decoding.params import GenerationParams
from counterpoint.schemas import ModelCard
from counterpoint.services.decode.backends import DecodeEvent, DecoderStats, LocalDecoder, Prompt
from counterpoint.settings import Settings


@serve.deployment(name="decode", max_ongoing_requests=4)
class DecodeDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        import torch

        config = Settings(**settings)
        # Ray sets OMP_NUM_THREADS to the actor's CPU share (1 or 0 here); use the cores we have.
        torch.set_num_threads(config.torch_threads or os.cpu_count() or 1)
        self.decoder = LocalDecoder.from_settings(config)

    async def complete_stream(
        self, prompt: Prompt, params: GenerationParams | Mapping[str, Any]
    ) -> AsyncGenerator[DecodeEvent, None]:
        """`StreamStart`, then text deltas, then `StreamEnd` (usage and finish reason)."""
        options = params if isinstance(params, GenerationParams) else GenerationParams.model_validate(params)
        async with aclosing(self.decoder.stream(prompt, options)) as events:
            async for event in events:
                yield event

    async def models(self) -> list[ModelCard]:
        return await self.decoder.models()

    async def stats(self) -> DecoderStats:
        return await self.decoder.stats()
