"""A training config's dropout tweaks applied to a model: attention dropout ``p`` and fast masks.

Both trainable models (:mod:`.model`, :mod:`.cross_encoder`) call :func:`apply_dropout_config` on
the transformer they load. Imports: torch and :mod:`.fast_dropout` only.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from counterpoint.workers.fast_dropout import use_fast_dropout


class DropoutSettings(Protocol):
    """The fields of a training config read here (``workers.config.TrainConfig``)."""

    attention_dropout: float | None
    fast_dropout: bool


def set_attention_dropout(model: nn.Module, p: float) -> int:
    """Set the dropout on attention probabilities of every attention block to ``p``; returns how many.

    Why: with ``p > 0`` a training step must draw a mask over every (head, query, key) score, which
    on CPU keeps SDPA off its fused kernel; a MiniLM step at 320 tokens is then ~2.5x slower than
    with ``p = 0``. Hidden-state dropout (and with it SimCSE's two views) is untouched.
    """
    changed = 0
    for module in model.modules():
        dropout = getattr(module, "dropout", None)
        if "Attention" in type(module).__name__ and isinstance(dropout, nn.Dropout):
            dropout.p = p
            changed += 1
    return changed


def apply_dropout_config(model: nn.Module, config: DropoutSettings) -> None:
    """``config.attention_dropout`` (when set) on the attention blocks, then, with ``config.fast_dropout``,
    :func:`~counterpoint.workers.fast_dropout.use_fast_dropout`."""
    if config.attention_dropout is not None:
        set_attention_dropout(model, config.attention_dropout)
    if config.fast_dropout:
        use_fast_dropout(model)
