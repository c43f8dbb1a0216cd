"""Score fusion for two-stage search: combine a reranker's scores with the first stage's.

A cross-encoder trained on a few hundred queries reorders the first stage's candidates well at the
top but forgets what the bi-encoder knew; the standard remedy (e.g. Pradeep et al.'s "expando-mono-duo"
interpolation, or the "hybrid" rerankers of BEIR studies) is a linear interpolation of the two
stages' scores. The two scales differ (cosine in [-1, 1], logits unbounded), so each is z-scored
over the query's candidates first::

    fused_i = w * z(first_stage)_i + (1 - w) * z(reranker)_i

``w = 0`` is the reranker alone, ``w = 1`` the first stage's order. ``w`` is a property of the
(retriever, reranker) pair: choose it on a dev split, never on test.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def zscores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(s - mean) / std`` over one query's candidates; all zeros when they are all equal."""
    values = np.asarray(scores, dtype=np.float64)
    spread = values.std()
    if values.size == 0 or spread == 0:
        return np.zeros_like(values)
    return (values - values.mean()) / spread


def fuse_scores(
    first_stage: Sequence[float] | np.ndarray, reranker: Sequence[float] | np.ndarray, weight: float
) -> np.ndarray:
    """Interpolated z-scores of one query's candidates (same order in both arguments)."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the fusion weight must be in [0, 1], got {weight}")
    if len(first_stage) != len(reranker):
        raise ValueError(f"{len(first_stage)} first-stage scores but {len(reranker)} reranker scores")
    return weight * zscores(first_stage) + (1.0 - weight) * zscores(reranker)
