"""CoSENT / AnglE ranking loss for scored pairs (STS)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from counterpoint.workers.losses.infonce import at_least_float32


def pairwise_cosine(x: Tensor, y: Tensor) -> Tensor:
    """``(B, d), (B, d) -> (B,)`` cosine of each row pair."""
    return (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(dim=-1)


def pairwise_angle(x: Tensor, y: Tensor) -> Tensor:
    """AnglE's similarity: read each embedding as complex numbers ``z = re + i·im`` (first half, second
    half of the coordinates), L2-normalise, and score ``|cos + sin|`` of the angle difference, i.e.
    ``|Σ Re(x·ȳ) + Σ Im(x·ȳ)|`` over the complex coordinates. An odd dimension is zero-padded."""
    if x.shape[-1] % 2:
        x, y = F.pad(x, (0, 1)), F.pad(y, (0, 1))
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    x_re, x_im = x.chunk(2, dim=-1)
    y_re, y_im = y.chunk(2, dim=-1)
    real = (x_re * y_re + x_im * y_im).sum(dim=-1)
    imag = (x_im * y_re - x_re * y_im).sum(dim=-1)
    return (real + imag).abs()


class CoSENTLoss(nn.Module):
    r"""CoSENT: rank the pairs of a batch by predicted similarity in the order of their gold scores::

        L = log( 1 + Σ_{(i,j),(k,l): s_ij > s_kl} exp( λ (cos_kl - cos_ij) ) )

    over every two pairs of the batch whose gold scores differ (ties contribute nothing). Only the
    ordering of the gold scores matters, so any scale of labels (0-5 STS, 0-1) works. With
    ``similarity="angle"`` it is AnglE's angle objective (CoSENT on the complex-space angle difference).

    Papers: Su 2022 / Huang et al. 2024, "CoSENT: Consistent Sentence Embedding via Similarity Ranking"
    (IEEE/ACM TASLP, doi:10.1109/TASLP.2024.3402087); Li & Li 2023, "AnglE-optimized Text Embeddings"
    (https://arxiv.org/abs/2309.12871).

    Args:
        scale: λ, 20 as in both papers.
        similarity: ``"cosine"`` (CoSENT) or ``"angle"`` (AnglE).

    Inputs: ``embeddings_a (B, d)``, ``embeddings_b (B, d)``, ``labels (B,)`` gold similarity of each pair.
    """

    def __init__(self, scale: float = 20.0, similarity: Literal["cosine", "angle"] = "cosine") -> None:
        super().__init__()
        if similarity not in ("cosine", "angle"):
            raise ValueError(f"similarity must be 'cosine' or 'angle', got {similarity!r}")
        self.scale = scale
        self.similarity = similarity

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        pair_sim = pairwise_cosine if self.similarity == "cosine" else pairwise_angle
        scores = at_least_float32(pair_sim(embeddings_a, embeddings_b)) * self.scale  # (B,)
        labels = labels.to(scores.device).reshape(-1)
        if labels.shape != scores.shape:
            raise ValueError(f"labels must be (B,) = {tuple(scores.shape)}, got {tuple(labels.shape)}")
        # diff[p, q] = λ (cos_q - cos_p), kept where pair p's gold score exceeds pair q's.
        diff = scores.unsqueeze(0) - scores.unsqueeze(1)
        diff = diff.masked_fill(~(labels.unsqueeze(1) > labels.unsqueeze(0)), float("-inf"))
        return torch.logsumexp(torch.cat([scores.new_zeros(1), diff.flatten()]), dim=0)
