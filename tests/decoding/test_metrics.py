"""rep-n, diversity and coherence (Su et al. 2022) on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from counterpoint.decoding.metrics import (
    coherence,
    coherence_scores,
    corpus_diversity,
    corpus_rep_n,
    diversity,
    ngram_counts,
    rep_n,
    summarize,
)
from counterpoint.models.embedder import Embeddings


def test_rep_n_by_hand():
    tokens = [1, 2, 1, 2, 1, 2]
    # bigrams 12 21 12 21 12: 5 total, 2 unique; trigrams 121 212 121 212: 4 / 2; 4-grams 1212 2121 1212: 3 / 2
    assert ngram_counts(tokens, 2) == (2, 5)
    assert rep_n(tokens, 2) == pytest.approx(60.0)
    assert rep_n(tokens, 3) == pytest.approx(50.0)
    assert rep_n(tokens, 4) == pytest.approx(100 / 3)
    assert diversity(tokens) == pytest.approx(0.4 * 0.5 * (2 / 3))


def test_rep_n_edge_cases():
    assert rep_n([1, 2, 3, 4], 2) == 0.0 and diversity([1, 2, 3, 4]) == 1.0
    assert rep_n([7, 7, 7], 2) == pytest.approx(50.0)  # 77 77: 2 total, 1 unique
    assert rep_n([1], 2) == 0.0 and rep_n([], 4) == 0.0  # too short: no n-grams
    assert rep_n("the cat the cat", 2) == rep_n(["the", "cat", "the", "cat"], 2) == pytest.approx(100 / 3)
    with pytest.raises(ValueError):
        rep_n([1, 2], 0)


def test_corpus_versions_pool_counts():
    texts = ["a b a b", "c d e"]  # bigrams: ab ba ab (3, 2 unique) + cd de (2, 2 unique)
    assert corpus_rep_n(texts, 2) == pytest.approx(100 * (1 - 4 / 5))
    assert corpus_rep_n([], 2) == 0.0
    rep3 = 100 * (1 - 3 / 3)  # aba bab cde: all unique
    assert corpus_diversity(texts) == pytest.approx((1 - 0.2) * (1 - rep3 / 100) * 1.0)


def _bag_of_letters(texts: list[str]) -> np.ndarray:
    """A transparent embedding: letter counts."""
    out = np.zeros((len(texts), 26))
    for i, text in enumerate(texts):
        for ch in text.lower():
            if "a" <= ch <= "z":
                out[i, ord(ch) - 97] += 1
    return out


def test_coherence_is_the_cosine_of_the_embeddings():
    assert coherence("abc", "cab", _bag_of_letters) == pytest.approx(1.0)
    assert coherence("aaa", "bbb", _bag_of_letters) == pytest.approx(0.0)
    assert coherence("ab", "a", _bag_of_letters) == pytest.approx(1 / math.sqrt(2))
    scores = coherence_scores(["ab", "aaa"], ["a", "bbb"], _bag_of_letters)
    assert scores.shape == (2,) and scores == pytest.approx([1 / math.sqrt(2), 0.0])
    with pytest.raises(ValueError):
        coherence_scores(["a"], [], _bag_of_letters)


def test_coherence_accepts_the_platform_embeddings_type():
    def embed(texts: list[str]) -> Embeddings:
        return Embeddings(_bag_of_letters(texts).astype(np.float32), [1] * len(texts))

    assert coherence("ab", "ba", embed) == pytest.approx(1.0)


def test_summarize():
    metrics = summarize(["a b a b", "c d e"], ["ab", "cd"], _bag_of_letters)
    assert metrics.rep_2 == pytest.approx(20.0)
    assert metrics.diversity == pytest.approx(0.8)
    assert metrics.mean_tokens == pytest.approx(3.5)
    assert metrics.coherence is not None and 0 < metrics.coherence <= 1
    assert summarize(["x y"]).coherence is None
    assert set(metrics.as_dict()) == {"rep_2", "rep_3", "rep_4", "diversity", "coherence", "mean_tokens"}
