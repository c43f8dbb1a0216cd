"""Contrastive search (Su et al. 2022, "A Contrastive Framework for Neural Text Generation").

Among the top-k candidates ``V_k`` of ``p(. | x_<t)``::

    x_t = argmax_{v in V_k} (1 - α) p(v | x_<t) - α max_{j<t} cos(h_v, h_{x_j})

where ``h`` is the last layer's hidden state and ``j`` runs over the prompt and the tokens
generated so far. The k candidates are scored in ONE batched forward pass: the KV cache is
made k rows of the current prefix, the k candidate tokens are fed as a batch, and the chosen
candidate's row is the prefix of the next step (:func:`~counterpoint.decoding.cached_forward.fork_cache`).
That pass also extends the sequence with the chosen token, so each token costs one forward
pass of batch k (and :meth:`ContrastiveSearch.advance` has nothing left to do); the LM head
runs on the chosen row only (:func:`~counterpoint.decoding.cached_forward.decoder_and_head`).
``α = 0`` is greedy search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from counterpoint.decoding.cached_forward import decoder_and_head, fork_cache, forward, new_cache
from counterpoint.decoding.methods.base import Decoder
from counterpoint.decoding.options import DecodingOptions
from counterpoint.decoding.params import DEFAULT_CS_TOP_K, MAX_CS_TOP_K
from counterpoint.decoding.scores import contrastive_search_scores


class ContrastiveSearch(Decoder):
    """Top-k candidates re-ranked by confidence minus their similarity to the context."""

    name = "contrastive_search"

    def __init__(self, model: Any, top_k: int, alpha: float) -> None:
        super().__init__(model)
        self.top_k, self.alpha = top_k, alpha

    @classmethod
    def from_options(cls, model: Any, options: DecodingOptions) -> ContrastiveSearch:
        k = DEFAULT_CS_TOP_K if options.top_k is None else options.top_k
        if k > MAX_CS_TOP_K:
            raise ValueError(f"contrastive search takes at most top_k={MAX_CS_TOP_K} candidates, got {k}")
        return cls(model, k, options.penalty_alpha)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[int], torch.Tensor]]:
        """Last-layer hidden states (B, T, d) and a function: batch row -> next-token logits."""
        if self.split is not None:
            decoder, head = self.split
            hidden = decoder(input_ids=x, cache=self.cache, use_cache=True).last_hidden_state
            return hidden, lambda row: head(hidden[row, -1])
        out = forward(self.model, x, self.cache, hidden=[-1])
        return out.hidden_states[-1], lambda row: out.logits[row, -1]

    def prefill(self, ids: torch.Tensor) -> None:
        self.cache = new_cache(self.model)
        self.split = decoder_and_head(self.model)
        hidden, logits_of = self._run(ids)
        self.logits = logits_of(0)
        self.context = F.normalize(hidden[0].float(), dim=-1)  # (t, d): the prompt's states included
        self.k = min(self.top_k, self.logits.numel())
        self.best, self.batch = 0, 1

    def choose(self) -> int:
        k = self.k
        top_probs, top_ids = torch.topk(torch.softmax(self.logits.float(), dim=-1), k)
        fork_cache(
            self.cache, self.best, self.batch, k
        )  # k copies of the chosen row: every candidate's prefix
        hidden, logits_of = self._run(top_ids.view(k, 1))  # the k candidates, one batched pass
        candidates = F.normalize(hidden[:, -1].float(), dim=-1)  # (k, d)
        scores = contrastive_search_scores(top_probs, candidates, self.context, self.alpha)
        self.best, self.batch = int(torch.argmax(scores)), k
        self.logits = logits_of(self.best)
        self.context = torch.cat([self.context, candidates[self.best : self.best + 1]])
        return int(top_ids[self.best])
