"""Contrastive losses on embeddings: plain ``nn.Module``s usable with or without Ray.

Each loss takes embedding tensors (not a model), so it composes with
:class:`counterpoint.workers.gradcache.GradCache` (large batches under a memory cap), with
:class:`MatryoshkaLoss` (several truncated sizes) and with cross-worker gathering (``gather=True``,
see :mod:`counterpoint.workers.losses.distributed`). :data:`LOSSES` maps a config's ``loss.name`` to
its loss (``LOSSES[name].from_config(cfg)``; :func:`build_loss` adds the cross-worker choice).

Imports: torch and its own modules only (the losses are the lowest floor of the workers).
"""

from __future__ import annotations

from counterpoint.workers.losses.cosent import CoSENTLoss
from counterpoint.workers.losses.debiased import DebiasedContrastiveLoss
from counterpoint.workers.losses.distributed import (
    Gathered,
    all_gather_with_grad,
    average_gradients,
    gather_embeddings,
    is_distributed,
)
from counterpoint.workers.losses.false_negatives import FalseNegativeFilter
from counterpoint.workers.losses.infonce import InfoNCELoss, cosine_similarity_matrix
from counterpoint.workers.losses.matryoshka import MatryoshkaLoss
from counterpoint.workers.losses.registry import LOSSES, LossEntry, build_loss
from counterpoint.workers.losses.simcse import (
    SupervisedSimCSELoss,
    UnsupervisedSimCSELoss,
    encode_views,
    has_active_dropout,
)

__all__ = [
    "CoSENTLoss",
    "DebiasedContrastiveLoss",
    "FalseNegativeFilter",
    "Gathered",
    "InfoNCELoss",
    "LOSSES",
    "LossEntry",
    "MatryoshkaLoss",
    "SupervisedSimCSELoss",
    "UnsupervisedSimCSELoss",
    "all_gather_with_grad",
    "average_gradients",
    "build_loss",
    "cosine_similarity_matrix",
    "encode_views",
    "gather_embeddings",
    "has_active_dropout",
    "is_distributed",
]
