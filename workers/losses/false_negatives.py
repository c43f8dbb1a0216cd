"""False-negative masking by similarity threshold (GTE, Li et al. 2023; GISTEmbed, Solatorio 2024).

In-batch negatives are other examples' positives; some of them are relevant to the anchor too
(duplicates, paraphrases), and pushing them away hurts. A candidate ``j`` of anchor ``i`` is dropped
from the softmax (its logit set to ``-inf``) when

* ``margin`` is set:    ``s(a_i, c_j) > s(a_i, p_i) - margin``  (more similar than the positive,
  up to a margin; GISTEmbed's "absolute" strategy, GTE uses ``s_ii + 0.1`` i.e. ``margin=-0.1``), or
* ``threshold`` is set: ``s(a_i, c_j) > threshold``           (an absolute cosine cut-off).

``s`` is the cosine similarity of the model being trained, detached (GISTEmbed uses a frozen guide
model's similarities instead; the rule is the same). Ties within ``1e-6`` count as exceeding, so an
exact duplicate of the positive is always dropped when ``margin >= 0``. The positive itself is never
dropped. Used by :class:`~counterpoint.workers.losses.infonce.InfoNCELoss` (and so by SimCSE and the
debiased loss) through their ``false_negatives=`` option.

Papers: https://arxiv.org/abs/2308.03281 (GTE), https://arxiv.org/abs/2402.16829 (GISTEmbed).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

_TIE = 1e-6


@dataclass(frozen=True)
class FalseNegativeFilter:
    """Which candidates to drop; see the module docstring. ``margin=0.0`` drops negatives at least as
    similar to the anchor as its positive."""

    margin: float | None = 0.0
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.margin is None and self.threshold is None:
            raise ValueError("FalseNegativeFilter needs a margin, a threshold, or both")

    @torch.no_grad()
    def mask(self, similarities: Tensor, targets: Tensor) -> Tensor:
        """Boolean ``(n, C)`` mask, True = drop; ``similarities`` is ``(n, C)`` cosine, ``targets``
        ``(n,)`` the column of each row's positive."""
        rows = torch.arange(similarities.shape[0], device=similarities.device)
        positive = similarities[rows, targets].unsqueeze(1)
        drop = torch.zeros_like(similarities, dtype=torch.bool)
        if self.margin is not None:
            drop |= similarities > positive - self.margin - _TIE
        if self.threshold is not None:
            drop |= similarities > self.threshold - _TIE
        drop[rows, targets] = False
        return drop
