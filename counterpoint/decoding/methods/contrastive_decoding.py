"""Contrastive decoding (Li et al. 2023, "Contrastive Decoding: Open-ended Text Generation as Optimization")::

    x_t = argmax_{v in V_head} log p_exp(v | x_<t) - log p_ama(v | x_<t)
    V_head = {v : p_exp(v | x_<t) >= α max_w p_exp(w | x_<t)}

with ``p_ama = softmax(amateur_logits / τ)``. The amateur is either another model of the
same tokenizer (its own KV cache) or, by default, the expert's first ``L`` layers (see
:mod:`counterpoint.decoding.amateur`: computed from the expert's own forward pass).
"""

from __future__ import annotations

from typing import Any

import torch

from counterpoint.decoding.amateur import check_amateur_layers, default_amateur_layers, early_exit_logits
from counterpoint.decoding.cached_forward import device_of, forward, new_cache, token_tensor
from counterpoint.decoding.methods.base import Decoder
from counterpoint.decoding.options import DecodingOptions
from counterpoint.decoding.scores import contrastive_decoding_scores


class ContrastiveDecoding(Decoder):
    """The token the expert prefers most over the amateur, among those the expert finds plausible."""

    name = "contrastive_decoding"

    def __init__(
        self, model: Any, alpha: float, amateur: Any | None, amateur_layers: int, amateur_temperature: float
    ) -> None:
        super().__init__(model)
        self.alpha, self.amateur = alpha, amateur
        self.amateur_layers, self.amateur_temperature = amateur_layers, amateur_temperature

    @classmethod
    def from_options(cls, model: Any, options: DecodingOptions) -> ContrastiveDecoding:
        amateur, amateur_layers = options.amateur, options.amateur_layers
        if amateur is not None and amateur_layers is not None:
            raise ValueError("pass either an amateur model or amateur_layers, not both")
        layers = 0
        if amateur is None:
            layers = (
                amateur_layers
                if amateur_layers is not None
                else default_amateur_layers(int(model.config.num_hidden_layers))
            )
            check_amateur_layers(model, layers)
        elif getattr(amateur.config, "vocab_size", None) != getattr(model.config, "vocab_size", None):
            raise ValueError("the amateur model must share the expert's vocabulary (same tokenizer)")
        return cls(model, options.cd_alpha, amateur, layers, options.amateur_temperature)

    def _step(self, x: torch.Tensor) -> None:
        """Expert and amateur next-token logits after ``x``."""
        if self.amateur is None:  # early exit: the truncated amateur shares the expert's pass and cache
            out = forward(self.model, x, self.cache, hidden=[self.amateur_layers])
            self.expert_logits = out.logits[0, -1]
            self.amateur_logits = early_exit_logits(self.model, out.hidden_states[self.amateur_layers][0, -1])
            return
        self.expert_logits = forward(self.model, x, self.cache).logits[0, -1]
        amateur_x = x.to(device_of(self.amateur))
        self.amateur_logits = (
            forward(self.amateur, amateur_x, self.amateur_cache).logits[0, -1].to(self.device)
        )

    def prefill(self, ids: torch.Tensor) -> None:
        self.device = ids.device
        self.cache = new_cache(self.model)
        self.amateur_cache = new_cache(self.amateur) if self.amateur is not None else None
        self._step(ids)

    def choose(self) -> int:
        scores = contrastive_decoding_scores(
            self.expert_logits, self.amateur_logits, self.alpha, self.amateur_temperature
        )
        return int(torch.argmax(scores))

    def advance(self, token: int) -> None:
        self._step(token_tensor(token, self.device))
