"""Debiased contrastive loss (Chuang et al., NeurIPS 2020)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from counterpoint.workers.losses.infonce import InfoNCELoss


class DebiasedContrastiveLoss(InfoNCELoss):
    r"""InfoNCE whose negative term is corrected for the chance that a "negative" shares the anchor's class.

    With ``t = 1/scale``, cosine similarity ``s``, positive ``p`` and the ``N`` negatives ``u_j`` of an
    anchor ``a`` (every other candidate: other examples' positives and all hard negatives), and class
    prior ``τ+`` (probability that a random negative is in fact a positive)::

        g = max( 1/(1-τ+) · ( 1/N Σ_j exp(s(a,u_j)/t) - τ+ · exp(s(a,p)/t) ),  exp(-1/t) )
        L = -log( exp(s(a,p)/t) / ( exp(s(a,p)/t) + N·g ) )

    The clamp at ``exp(-1/t)`` (the smallest value ``exp(s/t)`` can take for cosine ``s >= -1``) keeps
    the estimate positive. With ``τ+ = 0``, ``g`` is the plain mean of the negatives' exponentials
    (already ``>= exp(-1/t)``), so the loss is exactly :class:`InfoNCELoss` with the same candidates.
    Computed in log space (shifted by each row's max logit), so large scales do not overflow.

    Paper: Chuang et al. 2020, "Debiased Contrastive Learning" (https://arxiv.org/abs/2007.00224).

    Mind the clamp: it binds when ``mean_j exp(λ(s_j - s+)) < τ+``, i.e. for every anchor whose
    positive beats its negatives by more than about ``ln(1/τ+)/λ``; such a row then sends **no**
    gradient to its negatives (only the positive is pulled in), and if most rows clamp the objective
    degenerates into alignment only. Hence the paper's ``t = 0.5`` (``scale=2``) as the default here,
    not MNRL's 20; at scale 20 use a small prior (``τ+ ≈ 0.01``) or expect heavy clamping.

    Args:
        tau_plus: class prior τ+ in ``[0, 1)``; 0.1 is the paper's usual choice.
        scale: ``λ = 1/t``; 2 (``t = 0.5``) as in the paper.
        symmetric, learnable_scale, min_scale, max_scale, gather: as :class:`InfoNCELoss`.
        false_negatives: optionally also drop detected false negatives (:class:`FalseNegativeFilter`);
            dropped candidates leave both the mean and ``N``. The two compose: the filter removes the
            obvious duplicates, the prior corrects for the ones it cannot see.

    Inputs: anchors ``(B, d)``, positives ``(B, d)``, optional hard negatives ``(B, k, d)`` / ``(B*k, d)``.
    """

    def __init__(self, tau_plus: float = 0.1, scale: float = 2.0, **options: Any) -> None:
        super().__init__(scale, **options)  # symmetric, learnable_scale, ..., gather: as InfoNCELoss
        if not 0.0 <= tau_plus < 1.0:
            raise ValueError(f"tau_plus must be in [0, 1), got {tau_plus}")
        self.tau_plus = tau_plus

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        positive = logits[rows, targets]
        negatives = logits.clone()
        negatives[rows, targets] = float("-inf")
        count = torch.isfinite(negatives).sum(dim=1)  # N per row (masked candidates excluded)
        neg_lse = torch.logsumexp(negatives, dim=1)  # -inf when N = 0
        shift = torch.maximum(positive, neg_lse).detach()  # >= every logit of the row
        mean_neg = torch.exp(neg_lse - shift - torch.log(count.clamp_min(1).to(logits.dtype)))
        g = (mean_neg - self.tau_plus * torch.exp(positive - shift)) / (1.0 - self.tau_plus)
        floor = torch.exp(-self.scale - shift)  # exp(-1/t), shifted like the rest
        g = torch.maximum(g, floor)
        denominator = torch.exp(positive - shift) + count * g
        return (torch.log(denominator) - (positive - shift)).mean()
