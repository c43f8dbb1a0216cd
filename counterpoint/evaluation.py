"""Retrieval evaluation (nDCG@k, Recall@k, MRR@k) through pytrec_eval, following BEIR's conventions.

The measures come from ``pytrec_eval`` (trec_eval's C code), the library BEIR itself uses, so
our numbers are comparable with published BEIR/MTEB figures; this module only decides which
queries count and how runs are prepared:

- only queries present in the qrels are evaluated; a judged query the run has no documents for
  scores 0 and still counts in the mean (pytrec_eval would silently leave it out, inflating scores);
- with ``ignore_identical_ids`` a document whose id equals the query id is dropped from the run
  (BEIR does this for data sets such as ArguAna and Quora where queries are also documents);
- MRR@k: pytrec_eval's ``recip_rank`` has no cut-off, so each query's run is first truncated to
  its top k in trec_eval's own order (score descending, ties by document id descending); the
  reciprocal rank of that truncated run is MRR@k, the definition BEIR and MS MARCO use.

All scores are percentages (0-100), as BEIR papers report them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytrec_eval

Run = dict[str, dict[str, float]]
"""A ranking: query id -> {document id: score}; higher scores rank first."""

Qrels = dict[str, dict[str, int]]
"""Relevance judgements: query id -> {document id: grade}; grade > 0 means relevant."""


@dataclass(frozen=True)
class QueryMetrics:
    """One query's scores, in percent."""

    ndcg: float
    recall: float
    mrr: float


@dataclass(frozen=True)
class RetrievalMetrics:
    """Mean scores over the judged queries, in percent, with the cut-offs used and per-query values.

    ``ndcg_at_10``, ``recall_at_100`` and ``mrr_at_10`` name the usual BEIR cut-offs; they refuse to
    answer when the metrics were computed at other cut-offs rather than mislabel a number. ``as_dict``
    gives names built from the actual cut-offs, ready for MLflow (``ndcg_at_10``, ...).
    """

    ndcg: float
    recall: float
    mrr: float
    n_queries: int
    k_ndcg: int = 10
    k_recall: int = 100
    k_mrr: int = 10
    per_query: dict[str, QueryMetrics] = field(default_factory=dict, repr=False)

    def _at(self, value: float, k: int, expected: int, name: str) -> float:
        if k != expected:
            raise AttributeError(f"{name} was computed at k={k}, not {expected}; use as_dict()")
        return value

    @property
    def ndcg_at_10(self) -> float:
        return self._at(self.ndcg, self.k_ndcg, 10, "nDCG")

    @property
    def recall_at_100(self) -> float:
        return self._at(self.recall, self.k_recall, 100, "Recall")

    @property
    def mrr_at_10(self) -> float:
        return self._at(self.mrr, self.k_mrr, 10, "MRR")

    def as_dict(self) -> dict[str, float]:
        """``{"ndcg_at_K": ..., "recall_at_K": ..., "mrr_at_K": ..., "n_queries": ...}``."""
        return {
            f"ndcg_at_{self.k_ndcg}": self.ndcg,
            f"recall_at_{self.k_recall}": self.recall,
            f"mrr_at_{self.k_mrr}": self.mrr,
            "n_queries": float(self.n_queries),
        }

    def summary(self) -> str:
        """One line for logs: ``nDCG@10 64.51  Recall@100 92.50  MRR@10 60.47  (300 queries)``."""
        return (
            f"nDCG@{self.k_ndcg} {self.ndcg:.2f}  Recall@{self.k_recall} {self.recall:.2f}  "
            f"MRR@{self.k_mrr} {self.mrr:.2f}  ({self.n_queries} queries)"
        )


def position_scores(ids: Sequence[str]) -> dict[str, float]:
    """A run's scores for hits already in their final order: N for the first of N, then N - 1, ...

    A run is ranked by score, so hits whose order is not their scores' (MMR's) are scored by position.
    """
    return {doc_id: float(len(ids) - rank) for rank, doc_id in enumerate(ids)}


def _ranked(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """Documents in trec_eval's order: score descending, then document id descending (its tie-break)."""
    return sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)


def evaluate_run(
    run: Mapping[str, Mapping[str, float]],
    qrels: Mapping[str, Mapping[str, int]],
    k_ndcg: int = 10,
    k_recall: int = 100,
    k_mrr: int = 10,
    *,
    ignore_identical_ids: bool = False,
) -> RetrievalMetrics:
    """Score ``run`` against ``qrels``: nDCG@k_ndcg, Recall@k_recall, MRR@k_mrr, in percent.

    Queries come from the qrels only (run entries for other queries are ignored); queries with an
    empty judgement dict are skipped, as pytrec_eval does. A judged query missing from the run, or
    with no documents left in it, scores 0 on every measure and counts in ``n_queries``.
    """
    for name, k in (("k_ndcg", k_ndcg), ("k_recall", k_recall), ("k_mrr", k_mrr)):
        if k < 1:
            raise ValueError(f"{name} must be >= 1, got {k}")
    judged: Qrels = {str(q): {str(d): int(g) for d, g in docs.items()} for q, docs in qrels.items() if docs}
    if not judged:
        raise ValueError("qrels hold no judged query")

    prepared: Run = {}
    for qid in judged:
        scores = {str(d): float(s) for d, s in (run.get(qid) or {}).items()}
        if ignore_identical_ids:
            scores.pop(qid, None)
        if scores:
            prepared[qid] = scores
    top_mrr: Run = {qid: dict(_ranked(scores)[:k_mrr]) for qid, scores in prepared.items()}

    cut = pytrec_eval.RelevanceEvaluator(judged, {f"ndcg_cut.{k_ndcg}", f"recall.{k_recall}"})
    reciprocal = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"})
    cut_scores = cut.evaluate(prepared) if prepared else {}
    rr_scores = reciprocal.evaluate(top_mrr) if top_mrr else {}

    per_query: dict[str, QueryMetrics] = {}
    for qid in judged:
        measures = cut_scores.get(qid, {})
        per_query[qid] = QueryMetrics(
            ndcg=100.0 * measures.get(f"ndcg_cut_{k_ndcg}", 0.0),
            recall=100.0 * measures.get(f"recall_{k_recall}", 0.0),
            mrr=100.0 * rr_scores.get(qid, {}).get("recip_rank", 0.0),
        )
    n = len(per_query)
    return RetrievalMetrics(
        ndcg=sum(m.ndcg for m in per_query.values()) / n,
        recall=sum(m.recall for m in per_query.values()) / n,
        mrr=sum(m.mrr for m in per_query.values()) / n,
        n_queries=n,
        k_ndcg=k_ndcg,
        k_recall=k_recall,
        k_mrr=k_mrr,
        per_query=per_query,
    )


def exact_search(
    query_embeddings: np.ndarray,
    doc_embeddings: np.ndarray,
    query_ids: Sequence[str],
    doc_ids: Sequence[str],
    top_k: int = 100,
    *,
    normalize: bool = True,
    batch_size: int = 1024,
) -> Run:
    """Brute-force dot-product (cosine when ``normalize``) search: each query's ``top_k`` documents.

    The exact reference an approximate index (HNSW) is measured against; queries go in batches so
    the score matrix stays ``batch_size x n_docs``.
    """
    queries = np.asarray(query_embeddings, dtype=np.float32)
    docs = np.asarray(doc_embeddings, dtype=np.float32)
    if queries.ndim != 2 or docs.ndim != 2 or queries.shape[1] != docs.shape[1]:
        raise ValueError(f"embedding shapes do not match: {queries.shape} vs {docs.shape}")
    if len(query_ids) != len(queries) or len(doc_ids) != len(docs):
        raise ValueError("need one id per embedding")
    if normalize:
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        docs = docs / np.maximum(np.linalg.norm(docs, axis=1, keepdims=True), 1e-12)
    k = min(top_k, len(docs))
    run: Run = {}
    if k == 0:
        return {str(qid): {} for qid in query_ids}
    for start in range(0, len(queries), batch_size):
        scores = queries[start : start + batch_size] @ docs.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for row, columns in enumerate(top):
            qid = str(query_ids[start + row])
            run[qid] = {str(doc_ids[c]): float(scores[row, c]) for c in columns}
    return run
