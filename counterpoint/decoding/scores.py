"""The choice rules of the decoding methods, as pure functions of logits and hidden states.

* :func:`filter_logits`: sampling's temperature, top-k and top-p (nucleus) filters.
* :func:`contrastive_search_scores`: Su et al. (2022), model confidence minus degeneration penalty.
* :func:`contrastive_decoding_scores`: Li et al. (2023), expert minus amateur log-probabilities.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """Sampling filters on a 1-D logit vector: temperature, top-k, then top-p (nucleus).

    Top-p keeps the smallest set of most likely tokens whose probability mass reaches
    ``top_p`` (a token is dropped when the mass strictly before it already does).
    """
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.numel():
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs
        drop = order[before >= top_p]
        logits = logits.index_fill(0, drop, -math.inf)
    return logits


def contrastive_search_scores(
    top_probs: torch.Tensor, candidate_hidden: torch.Tensor, context_hidden: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Su et al. (2022) scores ``(1-α) p(v) - α max_j cos(h_v, h_j)`` for k candidates.

    ``top_probs``: (k,); ``candidate_hidden``: (k, d); ``context_hidden``: (t, d). Hidden
    states need not be normalised.
    """
    cand = F.normalize(candidate_hidden.float(), dim=-1)
    ctx = F.normalize(context_hidden.float(), dim=-1)
    penalty = (cand @ ctx.T).max(dim=-1).values
    return (1.0 - alpha) * top_probs.float() - alpha * penalty


def contrastive_decoding_scores(
    expert_logits: torch.Tensor, amateur_logits: torch.Tensor, alpha: float, amateur_temperature: float = 1.0
) -> torch.Tensor:
    """Li et al. (2023) scores ``log p_exp - log p_ama`` on ``V_head``, ``-inf`` elsewhere.

    ``V_head = {v : p_exp(v) >= α max p_exp}``; ``p_ama = softmax(amateur_logits / τ)``
    (``τ = inf`` makes the amateur uniform, which turns the rule into greedy search).
    """
    if expert_logits.shape != amateur_logits.shape:
        raise ValueError(
            f"expert and amateur vocabularies differ: {tuple(expert_logits.shape)} vs {tuple(amateur_logits.shape)}"
        )
    logp_exp = torch.log_softmax(expert_logits.float(), dim=-1)
    logp_ama = torch.log_softmax(amateur_logits.float() / amateur_temperature, dim=-1)
    threshold = logp_exp.max() + (math.log(alpha) if alpha > 0 else -math.inf)
    return (logp_exp - logp_ama).masked_fill(logp_exp < threshold, -math.inf)
