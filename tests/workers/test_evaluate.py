"""Evaluation metrics on hand-made cases: alignment/uniformity formulas, Spearman, toy BEIR retrieval."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from counterpoint.workers.config import EvalConfig, RetrievalEval
from counterpoint.workers.data import Example
from counterpoint.workers.evaluate import (
    Evaluator,
    RetrievalTask,
    alignment,
    alignment_uniformity,
    positive_pairs,
    retrieval_metrics,
    sample_corpus,
    st_encoder,
    store_runs,
    sts_spearman,
    uniformity,
)


def bag_of_words(texts: Sequence[str], dim: int = 256) -> np.ndarray:
    """A deterministic encoder: hashed word counts, so cosine measures word overlap."""
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    return out


def table_encoder(table: dict[str, list[float]]):
    return lambda texts: np.array([table[t] for t in texts], dtype=float)


# --- alignment and uniformity ---------------------------------------------------------------------


def test_alignment_is_zero_for_identical_pairs_and_two_for_orthogonal_ones() -> None:
    x = np.random.default_rng(0).normal(size=(5, 8))
    assert alignment(x, x.copy()) == pytest.approx(0.0, abs=1e-12)
    assert alignment(x, 3.0 * x) == pytest.approx(0.0, abs=1e-12)  # embeddings are normalised first
    assert alignment(np.eye(3), np.roll(np.eye(3), 1, axis=0)) == pytest.approx(2.0)


def test_uniformity_matches_the_formula() -> None:
    # antipodal points: ||u - v||^2 = 4 -> log exp(-2 * 4) = -8
    assert uniformity(np.array([[1.0, 0.0], [-2.0, 0.0]])) == pytest.approx(-8.0)
    # e1, e2, -e1: squared distances 2, 4, 2
    points = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    expected = math.log((math.exp(-4) + math.exp(-8) + math.exp(-4)) / 3)
    assert uniformity(points) == pytest.approx(expected)
    # every point the same: the worst possible value, log 1 = 0
    assert uniformity(np.ones((4, 3))) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        uniformity(np.ones((1, 3)))


def test_alignment_uniformity_over_the_distinct_texts_of_pairs() -> None:
    encode = table_encoder({"a": [1, 0], "b": [1, 0], "c": [0, 1], "d": [0, 1]})
    metrics = alignment_uniformity(encode, [("a", "b"), ("c", "d")])
    assert metrics["alignment"] == pytest.approx(0.0, abs=1e-12)
    # four texts: two identical pairs (distance 0) and four orthogonal pairs (distance 2)
    assert metrics["uniformity"] == pytest.approx(math.log((2 * 1 + 4 * math.exp(-4)) / 6))


# --- STS ---------------------------------------------------------------------------------------


def test_spearman_is_100_when_the_ranking_is_preserved_and_minus_100_when_reversed() -> None:
    angles = [0.1, 0.5, 0.9, 1.3]
    table = {"anchor": [1.0, 0.0]} | {f"s{i}": [math.cos(a), math.sin(a)] for i, a in enumerate(angles)}
    encode = table_encoder(table)
    preserved = [("anchor", f"s{i}", 5.0 - i) for i in range(4)]  # smaller angle, higher score
    reversed_ = [("anchor", f"s{i}", float(i)) for i in range(4)]
    assert sts_spearman(encode, preserved) == pytest.approx(100.0)
    assert sts_spearman(encode, reversed_) == pytest.approx(-100.0)


# --- retrieval ---------------------------------------------------------------------------------


@pytest.fixture
def toy_beir(tmp_path: Path) -> Path:
    root = tmp_path / "toy"
    (root / "qrels").mkdir(parents=True)
    docs = {
        "d1": ("Apples", "apple orchard harvest"),
        "d2": ("Rivers", "river delta flood"),
        "d3": ("Violins", "violin strings bow"),
        "d4": ("Copper", "copper wire metal"),
    }
    docs |= {f"x{i}": ("", f"filler text number {i}") for i in range(20)}
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "title": t, "text": x}) for k, (t, x) in docs.items())
    )
    queries = {"q1": "apple harvest", "q2": "river flood", "q3": "violin bow"}
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items())
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\nq3\td4\t0\n"
    )
    return root


def test_retrieval_on_a_toy_beir_dir_is_perfect_for_a_matching_encoder(toy_beir: Path) -> None:
    metrics = retrieval_metrics(bag_of_words, toy_beir, "test")
    assert set(metrics) == {"ndcg_at_10", "recall_at_100", "mrr_at_10"}
    assert metrics["ndcg_at_10"] == pytest.approx(100.0)
    assert metrics["mrr_at_10"] == pytest.approx(100.0)
    assert metrics["recall_at_100"] == pytest.approx(100.0)


def test_retrieval_mrr_counts_the_rank_of_the_first_relevant_document(toy_beir: Path) -> None:
    def encode(texts: Sequence[str]) -> np.ndarray:
        # q1's relevant document d1 is pushed below one decoy: reciprocal rank 1/2 for q1
        vectors = bag_of_words(texts)
        for row, text in enumerate(texts):
            if text == "filler text number 0":
                vectors[row] = bag_of_words(["apple harvest"])[0]
        return vectors

    metrics = retrieval_metrics(encode, toy_beir, "test")
    assert metrics["mrr_at_10"] == pytest.approx(100.0 * (0.5 + 1 + 1) / 3)


def test_lexical_and_hybrid_modes_are_scored_in_the_platforms_store(toy_beir: Path) -> None:
    """BM25 finds every toy query's document by its words; an encoder that knows nothing (constant
    vectors) ruins dense retrieval, and hybrid gets the lexical ranking's help."""
    task = RetrievalTask(toy_beir, "test", modes=["dense", "lexical", "hybrid"])

    def blind(texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 8), dtype=np.float32)

    metrics = task(blind)
    assert {"ndcg_at_10", "lexical_ndcg_at_10", "hybrid_ndcg_at_10", "hybrid_mrr_at_10"} <= set(metrics)
    assert metrics["lexical_ndcg_at_10"] == pytest.approx(100.0)
    assert metrics["hybrid_ndcg_at_10"] > metrics["ndcg_at_10"]
    good = task(bag_of_words)
    assert good["ndcg_at_10"] == good["lexical_ndcg_at_10"] == pytest.approx(100.0)
    assert good["hybrid_ndcg_at_10"] == pytest.approx(100.0)


def test_store_runs_return_the_engines_scores_best_first(toy_beir: Path) -> None:
    """The runs a reranker fuses with: each hit's engine score (BM25, DBSF), not its position."""
    task = RetrievalTask(toy_beir, "test")
    qids, dids = list(task.queries), list(task.corpus)
    queries = bag_of_words([task.queries[q] for q in qids])
    docs = bag_of_words([task.corpus[d] for d in dids])
    runs = store_runs(task.queries, queries, task.corpus, docs, ["lexical", "hybrid"], 5)
    assert set(runs) == {"lexical", "hybrid"}
    for run in runs.values():
        assert [next(iter(run[q])) for q in ("q1", "q2", "q3")] == ["d1", "d2", "d3"]
        for hits in run.values():
            scores = list(hits.values())
            assert len(scores) <= 5 and scores == sorted(scores, reverse=True)
            assert scores != [1.0 / (r + 1) for r in range(len(scores))]  # not position scores
    assert store_runs(task.queries, queries, task.corpus, docs, [], 5) == {}


def test_a_rerank_task_takes_its_first_stage_from_the_chosen_mode(toy_beir: Path, tmp_path: Path) -> None:
    """A random tiny bi-encoder retrieves nothing in particular; a lexical first stage puts each
    query's document first, and a hybrid one keeps it among the candidates."""
    from counterpoint.workers.cross_encoder import RerankTask
    from tests.tiny_models import build_tiny_bi_encoder

    model = str(build_tiny_bi_encoder(tmp_path / "tiny"))
    lexical = RerankTask(toy_beir, "test", retriever=model, top_k=3, mode="lexical")
    assert lexical.mode == "lexical"
    assert {q: next(iter(hits)) for q, hits in lexical.first_stage.items()} == {
        "q1": "d1", "q2": "d2", "q3": "d3"
    }  # fmt: skip
    hybrid = RerankTask(toy_beir, "test", retriever=model, top_k=3, mode="hybrid")
    assert all(f"d{q[1]}" in hits and len(hits) == 3 for q, hits in hybrid.first_stage.items())
    dense = RerankTask(toy_beir, "test", retriever=model, top_k=3)
    assert dense.mode == "dense" and all(len(hits) == 3 for hits in dense.first_stage.values())


def test_corpus_sample_keeps_judged_documents_and_is_deterministic(toy_beir: Path) -> None:
    judged = {"d1", "d2", "d3", "d4"}
    sample = sample_corpus(toy_beir, judged, 10, seed=1)
    assert len(sample) == 10 and judged <= set(sample)
    assert sample == sample_corpus(toy_beir, judged, 10, seed=1)
    assert set(sample) != set(sample_corpus(toy_beir, judged, 10, seed=2))
    assert set(sample_corpus(toy_beir, judged, 2, seed=1)) == judged  # judged docs are never dropped
    assert len(sample_corpus(toy_beir, judged, None)) == 24
    assert sample["d1"] == "Apples apple orchard harvest"  # title + text, as BEIR embeds documents


# --- the evaluator a job runs -------------------------------------------------------------------


def test_positive_pairs_per_kind() -> None:
    pairs = [Example(("a", "b")), Example(("c", "d"))]
    assert positive_pairs("pairs", pairs) == [("a", "b"), ("c", "d")]
    scored = [Example(("a", "b"), 5.0), Example(("c", "d"), 1.0), Example(("e", "f"), 4.2)]
    assert positive_pairs("scored_pairs", scored) == [("a", "b"), ("e", "f")]
    assert positive_pairs("sentences", [Example(("a",))]) == []


def test_evaluator_returns_one_flat_dict(tmp_path: Path, toy_beir: Path) -> None:
    sts = tmp_path / "sts.tsv"
    sts.write_text(
        "sentence1\tsentence2\tscore\n"
        "apple harvest\tapple harvest\t5.0\n"
        "apple harvest\tapple orchard\t3.0\n"
        "apple harvest\triver flood\t0.0\n"
    )
    config = EvalConfig(
        sts=str(sts), retrieval=RetrievalEval(path=str(toy_beir), max_docs=8), uniformity_sample=16
    )
    examples = [Example((f"word{i} topic", f"word{i} answer")) for i in range(40)]
    metrics = Evaluator(config, "pairs", examples, seed=0)(bag_of_words)
    assert set(metrics) == {
        "sts_spearman",
        "ndcg_at_10",
        "recall_at_100",
        "mrr_at_10",
        "alignment",
        "uniformity",
    }
    assert metrics["sts_spearman"] == pytest.approx(100.0)
    assert all(math.isfinite(v) for v in metrics.values())

    sentences = Evaluator(
        EvalConfig(uniformity_sample=16), "sentences", [Example((f"s {i}",)) for i in range(30)]
    )
    assert set(sentences(bag_of_words)) == {"uniformity"}


def test_st_encoder_normalises_and_restores_training_mode(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from tests.tiny_models import build_tiny_bi_encoder

    model = SentenceTransformer(str(build_tiny_bi_encoder(tmp_path)), device="cpu")
    model.train()
    embeddings = st_encoder(model)(["one sentence", "another one"])
    assert embeddings.shape == (2, 32)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert model.training
