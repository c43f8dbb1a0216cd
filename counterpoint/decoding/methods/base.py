"""The interface every decoding method implements, and the one step loop that drives them all.

A :class:`Decoder` is one generation's state: :meth:`~Decoder.prefill` runs the prompt,
:meth:`~Decoder.choose` picks the next token from the current state, :meth:`~Decoder.advance`
feeds the chosen token back. :meth:`Decoder.steps` is the loop (EOS, ``max_new_tokens``, no
forward pass after the last token); methods differ only in those three steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import Any, ClassVar

import torch

from counterpoint.decoding.cached_forward import device_of, forward, new_cache, token_tensor
from counterpoint.decoding.options import DecodingOptions
from counterpoint.decoding.streams import RawTokens


class Decoder(ABC):
    """One decoding method running on ``model``; built by :meth:`from_options`, run by :meth:`steps`.

    Nothing runs on the model before the first token is asked for: :meth:`steps` is a generator.
    """

    name: ClassVar[str]

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def from_options(cls, model: Any, options: DecodingOptions) -> Decoder:
        """Validate what this method needs of ``options`` (``ValueError``) and build it."""
        return cls(model)

    @abstractmethod
    def prefill(self, ids: torch.Tensor) -> None:
        """Run the ``(1, T)`` prompt; the state then predicts the first new token."""

    @abstractmethod
    def choose(self) -> int:
        """The next token, from the current state."""

    def advance(self, token: int) -> None:  # noqa: B027 - methods that extend while choosing keep it
        """Feed the chosen ``token``, so that the state predicts the one after it."""

    def steps(self, ids: torch.Tensor, max_new_tokens: int, eos: Collection[int]) -> RawTokens:
        """Yield up to ``max_new_tokens`` tokens; return ``"eos"`` or ``"length"``."""
        with torch.inference_mode():
            self.prefill(ids.to(device_of(self.model)))
        for step in range(max_new_tokens):
            with torch.inference_mode():
                token = self.choose()
            if token in eos:
                return "eos"
            yield token
            if step + 1 < max_new_tokens:
                with torch.inference_mode():
                    self.advance(token)
        return "length"


class NextTokenLogitsDecoder(Decoder):
    """A method that chooses from one model's next-token logits (greedy search, sampling)."""

    def prefill(self, ids: torch.Tensor) -> None:
        self.device = ids.device
        self.cache = new_cache(self.model)
        self.logits = forward(self.model, ids, self.cache).logits[0, -1]

    def advance(self, token: int) -> None:
        self.logits = forward(self.model, token_tensor(token, self.device), self.cache).logits[0, -1]
