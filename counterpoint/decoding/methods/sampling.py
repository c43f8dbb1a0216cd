"""Sampling: temperature, then top-k, then top-p (nucleus) filtering; a seeded ``torch.Generator``."""

from __future__ import annotations

from typing import Any

import torch

from counterpoint.decoding.methods.base import NextTokenLogitsDecoder
from counterpoint.decoding.options import DecodingOptions
from counterpoint.decoding.scores import filter_logits


class Sampling(NextTokenLogitsDecoder):
    """A draw from the filtered next-token distribution; reproducible with a ``seed``."""

    name = "sampling"

    def __init__(
        self, model: Any, temperature: float, top_k: int | None, top_p: float, seed: int | None
    ) -> None:
        super().__init__(model)
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed

    @classmethod
    def from_options(cls, model: Any, options: DecodingOptions) -> Sampling:
        return cls(model, options.temperature, options.top_k, options.top_p, options.seed)

    def prefill(self, ids: torch.Tensor) -> None:
        self.generator = torch.Generator(device=ids.device)
        if self.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(self.seed)
        super().prefill(ids)

    def choose(self) -> int:
        probs = torch.softmax(filter_logits(self.logits, self.temperature, self.top_k, self.top_p), dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))
