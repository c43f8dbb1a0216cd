"""InfoNCE with in-batch negatives (Multiple Negatives Ranking loss)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from counterpoint.workers.losses.distributed import Gathered, gather_embeddings
from counterpoint.workers.losses.false_negatives import FalseNegativeFilter


def cosine_similarity_matrix(x: Tensor, y: Tensor) -> Tensor:
    """``(n, d) x (m, d) -> (n, m)`` cosine similarities."""
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(0, 1)


def at_least_float32(x: Tensor) -> Tensor:
    """Upcast half precision (fp16/bf16) for the softmax; keep float32/float64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def flatten_negatives(negatives: Tensor | None, batch_size: int) -> Tensor | None:
    """Hard negatives as ``(B*k, d)`` rows: accepts ``(B, k, d)`` (row ``i*k + j`` = negative j of
    anchor i) or already-flat ``(M, d)``."""
    if negatives is None:
        return None
    if negatives.ndim == 3:
        if negatives.shape[0] != batch_size:
            raise ValueError(f"negatives (B, k, d) must have B={batch_size}, got {tuple(negatives.shape)}")
        return negatives.reshape(-1, negatives.shape[-1])
    if negatives.ndim == 2:
        return negatives
    raise ValueError(f"negatives must be (B, k, d) or (B*k, d), got {tuple(negatives.shape)}")


class InfoNCELoss(nn.Module):
    r"""InfoNCE over in-batch negatives, a.k.a. MultipleNegativesRankingLoss.

    For anchors ``a_i`` and candidates ``c = [p_1..p_N, n_1..n_M]`` (every positive in the batch,
    then every hard negative), with ``s = cos`` and scale ``λ = 1/τ``::

        L = -1/B Σ_i log( exp(λ s(a_i, p_i)) / Σ_j exp(λ s(a_i, c_j)) )

    i.e. cross-entropy over the ``(B, N+M)`` matrix ``λ·cos`` with target ``i`` for row ``i``.
    ``symmetric=True`` averages it with the positive→anchor direction (``p_i`` against all anchors,
    target ``a_i``; hard negatives are not used there), as in CLIP.

    Papers: van den Oord et al. 2018, "Representation Learning with Contrastive Predictive Coding"
    (https://arxiv.org/abs/1807.03748); Henderson et al. 2017, "Efficient Natural Language Response
    Suggestion for Smart Reply" §4.4 (https://arxiv.org/abs/1705.00652).

    Args:
        scale: ``λ = 1/τ``; 20 (τ = 0.05) like sentence-transformers' MNRL. The initial value when learnable.
        symmetric: also apply the positive→anchor direction and average the two.
        learnable_scale: learn ``log λ`` (CLIP's parameterisation), clamped to ``[min_scale, max_scale]``.
        min_scale, max_scale: the clamp (CLIP clamps at 100).
        false_negatives: drop suspected false negatives from the softmax; see :class:`FalseNegativeFilter`.
        gather: gather candidates (and, if symmetric, anchors) from every ``torch.distributed`` worker
            with gradients (see :mod:`~counterpoint.workers.losses.distributed`); no-op when not distributed.

    Inputs (embeddings, not models, so the loss composes with GradCache and gathering):
        anchors ``(B, d)``, positives ``(B, d)``, optional hard negatives ``(B, k, d)`` or ``(B*k, d)``.
        Returns the scalar mean over this worker's anchors.

    Override :meth:`similarity` or :meth:`compute_loss` to change the metric or the objective (the
    debiased loss does the latter).
    """

    def __init__(
        self,
        scale: float = 20.0,
        *,
        symmetric: bool = False,
        learnable_scale: bool = False,
        min_scale: float = 1.0,
        max_scale: float = 100.0,
        false_negatives: FalseNegativeFilter | None = None,
        gather: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < min_scale <= scale <= max_scale:
            raise ValueError(
                f"need 0 < min_scale <= scale <= max_scale, got {min_scale}, {scale}, {max_scale}"
            )
        log_scale = torch.tensor(math.log(scale))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.symmetric = symmetric
        self.false_negatives = false_negatives
        self.gather_across_workers = gather

    @property
    def scale(self) -> Tensor:
        """Current ``λ = 1/τ`` (a tensor: differentiable when learnable)."""
        return self.log_scale.exp().clamp(self.min_scale, self.max_scale)

    @property
    def temperature(self) -> float:
        return 1.0 / float(self.scale.detach())

    def forward(self, anchors: Tensor, positives: Tensor, negatives: Tensor | None = None) -> Tensor:
        if anchors.ndim != 2 or anchors.shape != positives.shape:
            raise ValueError(
                f"anchors and positives must both be (B, d), got {tuple(anchors.shape)}, {tuple(positives.shape)}"
            )
        batch = anchors.shape[0]
        negatives = flatten_negatives(negatives, batch)
        gathered = self.gather(positives)
        candidates = gathered.embeddings
        if negatives is not None:
            candidates = torch.cat([candidates, self.gather(negatives).embeddings])
        targets = torch.arange(gathered.offset, gathered.offset + batch, device=anchors.device)
        loss = self.directional_loss(anchors, candidates, targets)
        if self.symmetric:
            all_anchors = self.gather(anchors).embeddings
            loss = 0.5 * (loss + self.directional_loss(positives, all_anchors, targets))
        return loss

    def gather(self, embeddings: Tensor) -> Gathered:
        """Rows of every worker when ``gather=True``, else the local rows at offset 0."""
        if self.gather_across_workers:
            return gather_embeddings(embeddings)
        return Gathered(embeddings, 0, (embeddings.shape[0],))

    def similarity(self, queries: Tensor, candidates: Tensor) -> Tensor:
        """``(n, C)`` similarities in [-1, 1]; cosine by default."""
        return cosine_similarity_matrix(queries, candidates)

    def directional_loss(self, queries: Tensor, candidates: Tensor, targets: Tensor) -> Tensor:
        """Loss of ``queries`` (n, d) ranking ``candidates[targets[i]]`` first among ``candidates``."""
        similarities = at_least_float32(self.similarity(queries, candidates))
        logits = similarities * self.scale
        if self.false_negatives is not None:
            drop = self.false_negatives.mask(similarities.detach(), targets)
            logits = logits.masked_fill(drop, float("-inf"))
        return self.compute_loss(logits, targets)

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Objective on scaled logits ``(n, C)`` (``-inf`` = masked): mean cross-entropy."""
        return F.cross_entropy(logits, targets)
