"""Greedy search: ``x_t = argmax p(v | x_<t)``."""

from __future__ import annotations

import torch

from counterpoint.decoding.methods.base import NextTokenLogitsDecoder


class Greedy(NextTokenLogitsDecoder):
    """The most likely next token, every step."""

    name = "greedy"

    def choose(self) -> int:
        return int(torch.argmax(self.logits))
