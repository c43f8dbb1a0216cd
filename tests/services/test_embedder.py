"""TextEmbedder's forward passes: texts of similar length go together, so short texts pad little."""

from __future__ import annotations

import numpy as np
import pytest

from counterpoint.models.embedder import MIN_PASS, TextEmbedder, padded_passes


@pytest.mark.parametrize("slack", [1.1, 1.25, 2.0])
def test_passes_cover_every_text_once_and_pad_within_the_slack(slack: float) -> None:
    lengths = [int(n) for n in np.random.default_rng(0).integers(8, 60, size=300)]
    passes = padded_passes(lengths, max_size=64, slack=slack)
    assert sorted(int(i) for p in passes for i in p) == list(range(300))
    for p in passes:
        got = [lengths[i] for i in p]
        assert 1 <= len(p) <= 64 and got == sorted(got, reverse=True)  # longest first, one length run
        if len(p) > MIN_PASS:  # a pass ends before its padding passes the slack
            assert len(p) * got[0] <= slack * sum(got)
    padded = sum(len(p) * lengths[p[0]] for p in passes)
    assert padded <= slack * sum(lengths) * 1.05  # 64 per pass in arrival order would pad ~1.7x


def test_equal_lengths_fill_whole_passes() -> None:
    assert [len(p) for p in padded_passes([12] * 130, max_size=64)] == [64, 64, 2]
    # a long text takes MIN_PASS short ones along before the padding ends its pass
    assert [len(p) for p in padded_passes([40] + [5] * 9, max_size=64)] == [MIN_PASS, 2]


def test_how_texts_are_grouped_does_not_change_their_vectors(tiny_embedder: TextEmbedder) -> None:
    texts = [("word " * n).strip() for n in (3, 40, 7, 7, 25, 1, 12, 60, 2, 9, 33, 5)]
    grouped = tiny_embedder.embed(texts)
    tiny_embedder.pad_slack = 1e9  # one pass for all, padded to the longest
    try:
        whole = tiny_embedder.embed(texts)
    finally:
        tiny_embedder.pad_slack = 1.25
    np.testing.assert_allclose(grouped.vectors, whole.vectors, atol=1e-5)
    assert grouped.token_counts == whole.token_counts == tiny_embedder.count_tokens(texts)
    assert grouped.token_counts[7] > grouped.token_counts[0]  # counts follow the input order
