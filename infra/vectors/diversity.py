"""Maximal marginal relevance (Carbonell & Goldstein, 1998): reorder a ranking so that each next hit
is relevant *and* unlike the hits already taken.

Relevance is the ranking's own score (dense similarity, BM25 or the fused hybrid score, min-max
scaled over the candidates), so diversity 0 keeps any mode's order; redundancy is the cosine
similarity of the candidates' dense vectors. The engines' built-in MMR scores relevance by the dense
vector alone, which would throw a lexical or hybrid ranking away, hence this small step in numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mmr_order(scores: Sequence[float], vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of the ``k`` candidates MMR picks, in pick order: each maximises
    ``(1 - diversity) * relevance - diversity * max similarity to those picked``."""
    n = len(scores)
    if n == 0 or k <= 0:
        return []
    rel = np.asarray(scores, dtype=np.float64)
    spread = rel.max() - rel.min()
    rel = (rel - rel.min()) / spread if spread > 0 else np.ones(n)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sims = unit @ unit.T
    picked = [int(np.argmax(rel))]
    closest = sims[picked[0]].copy()  # each candidate's similarity to its nearest picked hit
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    while len(picked) < min(k, n):
        gain = np.where(available, (1 - diversity) * rel - diversity * closest, -np.inf)
        best = int(np.argmax(gain))
        picked.append(best)
        available[best] = False
        closest = np.maximum(closest, sims[best])
    return picked
