"""Matryoshka representation learning: one loss applied at several truncated embedding sizes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn


def truncate(embeddings: Tensor, dim: int) -> Tensor:
    """Keep the first ``dim`` coordinates of the last axis and L2-renormalise."""
    if dim > embeddings.shape[-1]:
        raise ValueError(f"cannot truncate {embeddings.shape[-1]}-d embeddings to {dim}")
    return F.normalize(embeddings[..., :dim], dim=-1)


class MatryoshkaLoss(nn.Module):
    r"""Wrap any embedding loss so that every prefix size in ``dims`` is trained::

        L = Σ_m w_m · loss( normalize(e_1[..., :m]), normalize(e_2[..., :m]), ... )

    The truncated embeddings are re-normalised (matters for dot-product losses; cosine losses are
    unchanged by it). Weights are used as given (not normalised); default 1 each. Serving then
    truncates the same way (``counterpoint.models.embedder.truncate_and_normalize``).

    Paper: Kusupati et al. 2022, "Matryoshka Representation Learning" (https://arxiv.org/abs/2205.13147).

    Args:
        loss: an embedding loss, e.g. :class:`InfoNCELoss` or :class:`CoSENTLoss`.
        dims: prefix sizes, e.g. ``[384, 256, 128, 64]`` (include the full size to keep training it).
        weights: one weight per size.

    Inputs: whatever ``loss`` takes. Positional floating tensors with ``ndim >= 2`` (``(B, d)``,
    ``(B, k, d)``) are truncated; 1-d tensors (labels), ``None`` and keyword arguments pass through.
    """

    def __init__(self, loss: nn.Module, dims: Sequence[int], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"dims must be non-empty and positive, got {list(dims)}")
        if weights is None:
            weights = [1.0] * len(dims)
        if len(weights) != len(dims):
            raise ValueError("weights must have one entry per dim")
        self.loss = loss
        self.dims = tuple(int(d) for d in dims)
        self.weights = tuple(float(w) for w in weights)

    def forward(self, *inputs: Any, **kwargs: Any) -> Tensor:
        total: Tensor | None = None
        for dim, weight in zip(self.dims, self.weights, strict=True):
            shrunk = [_maybe_truncate(x, dim) for x in inputs]
            term = weight * self.loss(*shrunk, **kwargs)
            total = term if total is None else total + term
        assert total is not None
        return total


def _maybe_truncate(value: Any, dim: int) -> Any:
    if isinstance(value, Tensor) and value.ndim >= 2 and value.is_floating_point():
        return truncate(value, dim)
    return value
