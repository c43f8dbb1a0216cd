"""Quality measures of open-ended generation from Su et al. (2022), "A Contrastive Framework
for Neural Text Generation" (§4.1):

* ``rep-n = 100 × (1 − |unique n-grams(x̂)| / |total n-grams(x̂)|)`` of the continuation x̂
  (the share of repeated n-grams, in percent);
* ``diversity = Π_{n=2..4} (1 − rep-n / 100)``;
* ``coherence = cos(emb(x), emb(x̂))`` between the prompt x and the continuation x̂, under an
  embedding function passed in (the paper uses SimCSE; here any text embedder, e.g. the
  platform's ``TextEmbedder(...).embed``).

A continuation is a sequence of tokens (ids or strings); a ``str`` is split on whitespace,
as the paper's evaluation script does. The corpus versions pool n-gram counts over all
continuations (unique and total counts summed) before taking the ratio, as that script does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

Tokens = str | Sequence[Hashable]
EmbedFn = Callable[[list[str]], Any]  # texts -> (n, d) array-like (numpy, torch, lists)
DEFAULT_NS: tuple[int, ...] = (2, 3, 4)


def _tokens(tokens: Tokens) -> list[Hashable]:
    return tokens.split() if isinstance(tokens, str) else list(tokens)


def ngram_counts(tokens: Tokens, n: int) -> tuple[int, int]:
    """``(unique, total)`` n-grams of one continuation."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    toks = _tokens(tokens)
    grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
    return len(set(grams)), len(grams)


def rep_n(tokens: Tokens, n: int) -> float:
    """rep-n of one continuation, in percent; 0 when it has fewer than n tokens."""
    unique, total = ngram_counts(tokens, n)
    return 100.0 * (1.0 - unique / total) if total else 0.0


def diversity(tokens: Tokens, ns: Sequence[int] = DEFAULT_NS) -> float:
    """``Π_n (1 − rep-n/100)`` of one continuation, in [0, 1]."""
    return math.prod(1.0 - rep_n(tokens, n) / 100.0 for n in ns)


def corpus_rep_n(continuations: Sequence[Tokens], n: int) -> float:
    """rep-n over many continuations, n-gram counts pooled (sum of unique / sum of total)."""
    unique = total = 0
    for tokens in continuations:
        u, t = ngram_counts(tokens, n)
        unique += u
        total += t
    return 100.0 * (1.0 - unique / total) if total else 0.0


def corpus_diversity(continuations: Sequence[Tokens], ns: Sequence[int] = DEFAULT_NS) -> float:
    """Diversity from the pooled rep-n values."""
    return math.prod(1.0 - corpus_rep_n(continuations, n) / 100.0 for n in ns)


def coherence_scores(prompts: Sequence[str], continuations: Sequence[str], embed: EmbedFn) -> np.ndarray:
    """Cosine between each prompt's and its continuation's embedding, shape ``(n,)``."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    if not prompts:
        return np.zeros(0, dtype=np.float32)
    vectors = embed(list(prompts) + list(continuations))
    if hasattr(vectors, "vectors"):  # counterpoint.models.embedder.Embeddings
        vectors = vectors.vectors
    if hasattr(vectors, "detach"):  # torch tensor
        vectors = vectors.detach().cpu().numpy()
    matrix = np.asarray(vectors, dtype=np.float64)
    matrix = matrix / np.clip(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12, None)
    n = len(prompts)
    return np.sum(matrix[:n] * matrix[n:], axis=1).astype(np.float32)


def coherence(prompt: str, continuation: str, embed: EmbedFn) -> float:
    """Cosine between the prompt's and the continuation's embedding."""
    return float(coherence_scores([prompt], [continuation], embed)[0])


@dataclass(frozen=True)
class GenerationMetrics:
    """Pooled rep-2/3/4 (%), diversity, mean coherence (None without an embedder), mean length."""

    rep_2: float
    rep_3: float
    rep_4: float
    diversity: float
    coherence: float | None
    mean_tokens: float

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


def summarize(
    continuations: Sequence[str],
    prompts: Sequence[str] | None = None,
    embed: EmbedFn | None = None,
) -> GenerationMetrics:
    """All the paper's measures for a set of text continuations (whitespace tokens)."""
    coh = None
    if embed is not None and prompts is not None and continuations:
        coh = float(np.mean(coherence_scores(prompts, continuations, embed)))
    lengths = [len(_tokens(c)) for c in continuations]
    return GenerationMetrics(
        rep_2=corpus_rep_n(continuations, 2),
        rep_3=corpus_rep_n(continuations, 3),
        rep_4=corpus_rep_n(continuations, 4),
        diversity=corpus_diversity(continuations),
        coherence=coh,
        mean_tokens=float(np.mean(lengths)) if lengths else 0.0,
    )
