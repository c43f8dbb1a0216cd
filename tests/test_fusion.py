"""Score fusion: z-scored interpolation of first-stage and reranker scores, per query."""

from __future__ import annotations

import numpy as np
import pytest

from counterpoint.fusion import fuse_scores, zscores


def test_zscores_are_centred_unit_spread_and_zero_for_ties() -> None:
    z = zscores([1.0, 2.0, 3.0, 6.0])
    assert z.mean() == pytest.approx(0.0) and z.std() == pytest.approx(1.0)
    assert np.argsort(z).tolist() == [0, 1, 2, 3]
    assert zscores([0.5, 0.5]).tolist() == [0.0, 0.0] and zscores([]).size == 0


def test_the_weight_moves_the_order_from_the_reranker_to_the_first_stage() -> None:
    first = [0.9, 0.8, 0.1]  # cosine: a > b > c
    reranker = [-3.0, 5.0, 4.0]  # logits: b > c > a
    assert np.argsort(-fuse_scores(first, reranker, 0.0)).tolist() == [1, 2, 0]
    assert np.argsort(-fuse_scores(first, reranker, 1.0)).tolist() == [0, 1, 2]
    middle = fuse_scores(first, reranker, 0.5)
    assert middle == pytest.approx(0.5 * zscores(first) + 0.5 * zscores(reranker))
    # scale-free: multiplying the logits by 10 changes nothing
    assert fuse_scores(first, [10 * r for r in reranker], 0.3) == pytest.approx(
        fuse_scores(first, reranker, 0.3)
    )


@pytest.mark.parametrize(
    ("first", "second", "weight", "words"),
    [([1.0], [1.0], 1.5, "in \\[0, 1\\]"), ([1.0], [1.0, 2.0], 0.5, "1 first-stage")],
)
def test_bad_arguments(first: list[float], second: list[float], weight: float, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        fuse_scores(first, second, weight)
