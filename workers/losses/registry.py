"""The embedding losses by config name: ``LOSSES[name].from_config(cfg, gather=...)`` builds one.

``cfg`` is a :class:`~counterpoint.workers.config.LossConfig` (read by attribute, so this module does
not import the config). The names are the config's ``loss.name`` values for bi-encoders; the
cross-encoder losses (``bce``, ``listwise``) score logits, not embeddings, and live in
:mod:`counterpoint.workers.cross_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import nn

from counterpoint.workers.losses.cosent import CoSENTLoss
from counterpoint.workers.losses.debiased import DebiasedContrastiveLoss
from counterpoint.workers.losses.false_negatives import FalseNegativeFilter
from counterpoint.workers.losses.infonce import InfoNCELoss
from counterpoint.workers.losses.matryoshka import MatryoshkaLoss
from counterpoint.workers.losses.simcse import SupervisedSimCSELoss, UnsupervisedSimCSELoss


class LossSettings(Protocol):
    """The fields of a loss config the registry reads (``workers.config.LossConfig``)."""

    name: str
    scale: float
    learnable_temperature: bool
    symmetric: bool
    tau_plus: float
    false_negative_margin: float | None
    matryoshka_dims: list[int]


def in_batch_options(cfg: LossSettings, gather: bool) -> dict[str, Any]:
    """The keyword arguments every in-batch-negatives loss (InfoNCE family) takes from a config."""
    margin = cfg.false_negative_margin
    return {
        "symmetric": cfg.symmetric,
        "false_negatives": FalseNegativeFilter(margin=margin) if margin is not None else None,
        "gather": gather,
    }


@dataclass(frozen=True)
class LossEntry:
    """How one config name becomes a loss module.

    ``build(cfg, gather)`` makes the bare loss; :meth:`from_config` checks the options that only
    some losses take and wraps the result in :class:`MatryoshkaLoss` when ``matryoshka_dims`` is set.
    """

    build: Callable[[LossSettings, bool], nn.Module]
    learnable_temperature: bool = False

    def from_config(self, cfg: LossSettings, *, gather: bool = False) -> nn.Module:
        if cfg.learnable_temperature and not self.learnable_temperature:
            learnable = " and ".join(name for name, entry in LOSSES.items() if entry.learnable_temperature)
            raise ValueError(f"learnable_temperature applies to {learnable}, not {cfg.name}")
        loss = self.build(cfg, gather)
        if cfg.matryoshka_dims:
            loss = MatryoshkaLoss(loss, cfg.matryoshka_dims)
        return loss


LOSSES: dict[str, LossEntry] = {
    "mnrl": LossEntry(
        lambda cfg, gather: InfoNCELoss(
            cfg.scale, learnable_scale=cfg.learnable_temperature, **in_batch_options(cfg, gather)
        ),
        learnable_temperature=True,
    ),
    "debiased": LossEntry(
        lambda cfg, gather: DebiasedContrastiveLoss(
            cfg.tau_plus,
            cfg.scale,
            learnable_scale=cfg.learnable_temperature,
            **in_batch_options(cfg, gather),
        ),
        learnable_temperature=True,
    ),
    "simcse": LossEntry(
        lambda cfg, gather: UnsupervisedSimCSELoss(cfg.scale, **in_batch_options(cfg, gather))
    ),
    "simcse_supervised": LossEntry(
        lambda cfg, gather: SupervisedSimCSELoss(cfg.scale, **in_batch_options(cfg, gather))
    ),
    "cosent": LossEntry(lambda cfg, gather: CoSENTLoss(cfg.scale)),  # compares one batch's pairs: no gather
}


def build_loss(cfg: LossSettings, world_size: int = 1, *, cross_worker_negatives: bool = True) -> nn.Module:
    """The loss module ``cfg`` names (see :data:`LOSSES`).

    In-batch losses gather candidates from every worker (``gather=True``) when ``world_size > 1``
    and ``cross_worker_negatives``; CoSENT compares the pairs of one batch and never gathers.
    """
    entry = LOSSES.get(cfg.name)
    if entry is None:
        raise ValueError(f"unknown embedding loss {cfg.name!r}; one of {', '.join(LOSSES)}")
    return entry.from_config(cfg, gather=world_size > 1 and cross_worker_negatives)
