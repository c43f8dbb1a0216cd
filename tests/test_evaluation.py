"""Retrieval metrics on hand-computable runs, plus the BEIR conventions evaluate_run promises."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from counterpoint.evaluation import RetrievalMetrics, evaluate_run, exact_search


def test_perfect_run_scores_100() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1, "d3": 1}}
    run = {"q1": {"d1": 0.9, "x": 0.1}, "q2": {"d3": 0.8, "d2": 0.7, "x": 0.1}}
    metrics = evaluate_run(run, qrels)
    assert (metrics.ndcg_at_10, metrics.recall_at_100, metrics.mrr_at_10) == (100.0, 100.0, 100.0)
    assert metrics.n_queries == 2


def test_one_relevant_at_rank_two() -> None:
    metrics = evaluate_run({"q1": {"x": 0.9, "d1": 0.5, "y": 0.1}}, {"q1": {"d1": 1}})
    assert metrics.mrr_at_10 == pytest.approx(50.0)
    # DCG = 1 / log2(2 + 1); the ideal ranking puts d1 first: IDCG = 1 / log2(1 + 1) = 1.
    assert metrics.ndcg_at_10 == pytest.approx(100.0 / math.log2(3))
    assert metrics.recall_at_100 == pytest.approx(100.0)


def test_graded_ndcg_uses_linear_gain_and_log2_discount() -> None:
    qrels = {"q1": {"d1": 2, "d2": 1}}
    metrics = evaluate_run({"q1": {"d2": 0.9, "d1": 0.5}}, qrels)
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg == pytest.approx(100.0 * dcg / idcg)


def test_missing_and_empty_queries_count_as_zero() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    run = {"q1": {"d1": 1.0}, "q3": {}, "other": {"d2": 1.0}}  # q2 missing, q3 empty, "other" not judged
    metrics = evaluate_run(run, qrels)
    assert metrics.n_queries == 3
    assert metrics.ndcg == pytest.approx(100.0 / 3)
    assert metrics.recall == pytest.approx(100.0 / 3)
    assert metrics.mrr == pytest.approx(100.0 / 3)
    assert metrics.per_query["q2"].ndcg == metrics.per_query["q3"].mrr == 0.0
    assert set(metrics.per_query) == {"q1", "q2", "q3"}


def test_mrr_is_cut_at_k() -> None:
    # The relevant document at rank 11: uncut reciprocal rank would be 1/11; MRR@10 is 0.
    run = {"q1": {f"x{i:02d}": 1.0 - i / 100 for i in range(10)} | {"d1": 0.5}}
    qrels = {"q1": {"d1": 1}}
    assert evaluate_run(run, qrels).mrr_at_10 == 0.0
    assert evaluate_run(run, qrels, k_mrr=11).mrr == pytest.approx(100.0 / 11)
    assert evaluate_run(run, qrels).ndcg_at_10 == 0.0
    assert evaluate_run(run, qrels).recall_at_100 == 100.0


def test_recall_is_cut_at_k() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}}
    run = {"q1": {"d1": 0.9, "x": 0.8, "d2": 0.1}}
    assert evaluate_run(run, qrels, k_recall=2).recall == pytest.approx(50.0)
    assert evaluate_run(run, qrels, k_recall=3).recall == pytest.approx(100.0)


def test_mrr_truncation_breaks_ties_like_trec_eval() -> None:
    # trec_eval orders equal scores by document id descending: "b" ranks before "a".
    run, qrels = {"q1": {"a": 1.0, "b": 1.0}}, {"q1": {"a": 1}}
    assert evaluate_run(run, qrels, k_mrr=1).mrr == 0.0
    assert evaluate_run(run, qrels, k_mrr=2).mrr == pytest.approx(50.0)


def test_self_hits_are_ignored_only_on_request() -> None:
    run, qrels = {"q1": {"q1": 1.0, "d1": 0.5}}, {"q1": {"d1": 1}}
    assert evaluate_run(run, qrels).mrr_at_10 == pytest.approx(50.0)
    assert evaluate_run(run, qrels, ignore_identical_ids=True).mrr_at_10 == 100.0
    only_self = evaluate_run({"q1": {"q1": 1.0}}, qrels, ignore_identical_ids=True)
    assert (only_self.n_queries, only_self.ndcg) == (1, 0.0)


def test_mrr_matches_a_hand_written_reference_on_random_runs() -> None:
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels = {f"q{q}": {d: 1 for d in rng.sample(docs, rng.randint(1, 3))} for q in range(25)}
    run = {q: {d: rng.random() for d in rng.sample(docs, 30)} for q in qrels}
    expected = []
    for q, rel in qrels.items():
        top = sorted(run[q], key=run[q].__getitem__, reverse=True)[:10]
        expected.append(next((100.0 / rank for rank, d in enumerate(top, 1) if d in rel), 0.0))
    assert evaluate_run(run, qrels).mrr_at_10 == pytest.approx(sum(expected) / len(expected))


def test_metric_names_follow_the_cut_offs() -> None:
    metrics = evaluate_run({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}}, k_ndcg=5)
    assert metrics.as_dict() == {
        "ndcg_at_5": 100.0,
        "recall_at_100": 100.0,
        "mrr_at_10": 100.0,
        "n_queries": 1.0,
    }
    with pytest.raises(AttributeError, match="k=5"):
        _ = metrics.ndcg_at_10
    assert "nDCG@5 100.00" in metrics.summary()
    assert isinstance(metrics, RetrievalMetrics)


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="no judged query"):
        evaluate_run({"q1": {"d1": 1.0}}, {"q1": {}})
    with pytest.raises(ValueError, match="k_mrr"):
        evaluate_run({}, {"q1": {"d1": 1}}, k_mrr=0)


def test_exact_search_ranks_by_cosine() -> None:
    docs = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    queries = np.array([[3.0, 0.1], [0.0, 1.0]])
    run = exact_search(queries, docs, ["q1", "q2"], ["a", "b", "c"], top_k=2)
    assert sorted(run["q1"], key=run["q1"].__getitem__, reverse=True) == ["a", "c"]
    assert sorted(run["q2"], key=run["q2"].__getitem__, reverse=True) == ["b", "c"]
    assert run["q2"]["b"] == pytest.approx(1.0)  # cosine, not the raw dot product 2.0
    assert len(exact_search(queries, docs, ["q1", "q2"], ["a", "b", "c"], top_k=10)["q1"]) == 3
    with pytest.raises(ValueError, match="shapes"):
        exact_search(queries, docs[:, :1], ["q1", "q2"], ["a", "b", "c"])


def test_exact_search_feeds_evaluate_run() -> None:
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(50, 8))
    run = exact_search(docs[:5] + 0.01, docs, [f"q{i}" for i in range(5)], [f"d{i}" for i in range(50)], 10)
    metrics = evaluate_run(run, {f"q{i}": {f"d{i}": 1} for i in range(5)})
    assert metrics.ndcg_at_10 == metrics.mrr_at_10 == 100.0


def test_position_scores_rank_a_run_in_the_given_order() -> None:
    from counterpoint.evaluation import position_scores

    run = position_scores(["c", "a", "b"])  # an MMR order, not a score order
    assert sorted(run, key=lambda d: -run[d]) == ["c", "a", "b"]
    assert position_scores([]) == {}
