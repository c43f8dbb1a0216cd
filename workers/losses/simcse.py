"""SimCSE: unsupervised (dropout views) and supervised (NLI triplets) contrastive losses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from counterpoint.workers.losses.false_negatives import FalseNegativeFilter
from counterpoint.workers.losses.infonce import InfoNCELoss


def has_active_dropout(model: nn.Module) -> bool:
    """True when ``model`` is in training mode and holds a dropout module with ``p > 0``."""
    return model.training and any(
        isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 and m.training for m in model.modules()
    )


def encode_views(
    encode: Callable[[Any], Tensor], features: Any, model: nn.Module | None = None
) -> tuple[Tensor, Tensor]:
    """Encode the same ``features`` twice; with dropout active the two passes draw different masks.

    Pass ``model`` to check that dropout is on (otherwise both views are identical, the positive
    pair is trivial and only the push-apart term trains). With GradCache, pass the same features twice
    as two inputs instead (each chunk's RNG state is replayed per input, so the views stay distinct).
    """
    if model is not None and not has_active_dropout(model):
        raise ValueError(
            "unsupervised SimCSE needs dropout active: call model.train() and keep dropout p > 0"
        )
    return encode(features), encode(features)


class _FixedScaleInfoNCE(InfoNCELoss):
    """InfoNCE at a fixed scale (SimCSE's τ = 0.05 by default; no learnable temperature)."""

    def __init__(
        self,
        scale: float = 20.0,
        *,
        symmetric: bool = False,
        false_negatives: FalseNegativeFilter | None = None,
        gather: bool = False,
    ) -> None:
        super().__init__(scale, symmetric=symmetric, false_negatives=false_negatives, gather=gather)


class UnsupervisedSimCSELoss(_FixedScaleInfoNCE):
    r"""Unsupervised SimCSE: each sentence's two dropout views are a positive pair, the other
    sentences' views are negatives::

        L = -1/B Σ_i log( exp(λ cos(h_i, h'_i)) / Σ_j exp(λ cos(h_i, h'_j)) )

    where ``h = f(x; dropout mask z)``, ``h' = f(x; z')``. The caller must encode the **same** batch
    twice with dropout active (``model.train()``), e.g. with :func:`encode_views`; the loss itself
    only sees the two views. Scale 20 is the paper's τ = 0.05.

    Paper: Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings"
    (https://arxiv.org/abs/2104.08821), §3.

    Inputs: ``view_a (B, d)``, ``view_b (B, d)``: two encodings of the same B sentences.
    """

    def forward(self, view_a: Tensor, view_b: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(view_a, view_b)


class SupervisedSimCSELoss(_FixedScaleInfoNCE):
    r"""Supervised SimCSE: (premise, entailment, contradiction) triplets; the contradiction is a hard
    negative and every other example's positive and negative are in-batch negatives::

        L = -1/B Σ_i log( exp(λ cos(h_i, h+_i)) / Σ_j [ exp(λ cos(h_i, h+_j)) + exp(λ cos(h_i, h-_j)) ] )

    This is :class:`InfoNCELoss` with mandatory hard negatives. Scale 20 is the paper's τ = 0.05.

    Paper: Gao, Yao, Chen 2021, "SimCSE" (https://arxiv.org/abs/2104.08821), §4.

    Inputs: anchors ``(B, d)``, positives ``(B, d)``, hard negatives ``(B, d)``, ``(B, k, d)`` or ``(B*k, d)``.
    """

    def forward(self, anchors: Tensor, positives: Tensor, negatives: Tensor | None = None) -> Tensor:
        if negatives is None:
            raise ValueError("supervised SimCSE needs hard negatives (anchor, positive, negative)")
        return super().forward(anchors, positives, negatives)
