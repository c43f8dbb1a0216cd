"""Evaluation during and after training: flat ``{name: value}`` dicts, ready for MLflow.

* **STS**: Spearman correlation (x100) between the cosine of each scored pair and its gold score.
* **Retrieval**: nDCG@10, Recall@100, MRR@10 (x100) on a BEIR directory and split, through
  :mod:`counterpoint.evaluation` (pytrec_eval, BEIR's conventions). ``max_docs`` evaluates on a corpus
  sample that always keeps every judged document and fills up with a deterministic hash sample of the
  rest, so a curve over training steps compares like with like.
* **Alignment and uniformity** (Wang & Isola 2020, "Understanding Contrastive Representation Learning
  through Alignment and Uniformity on the Hypersphere", https://arxiv.org/abs/2005.10242), on
  L2-normalised embeddings::

      alignment  = E_{(x, y) positive}  ||f(x) - f(y)||^2          (lower: positives closer)
      uniformity = log E_{x != y}  exp(-2 ||f(x) - f(y)||^2)        (lower: more uniform)

  on a fixed sample of the training pairs; the trade-off between the two is what contrastive
  training moves (SimCSE, Gao et al. 2021, Figure 2).

Encoders are plain callables ``texts -> (n, d) array`` so the functions test without a model;
:func:`st_encoder` wraps a sentence-transformers model (and puts it back in training mode after).
"""

from __future__ import annotations

import hashlib
import heapq
import random
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from counterpoint.datasets import Qrels, iter_corpus, load_qrels, load_queries, passage_text
from counterpoint.evaluation import evaluate_run, exact_search, position_scores
from counterpoint.schemas import RetrievalMode
from counterpoint.workers.config import EvalConfig
from counterpoint.workers.data import DataSource, Example, Kind, iter_examples

Encoder = Callable[[Sequence[str]], np.ndarray]
"""``texts -> (n, d)`` float embeddings (normalised or not: every metric here normalises)."""


def st_encoder(model: object, *, batch_size: int = 64) -> Encoder:
    """An :data:`Encoder` over a ``SentenceTransformer``; restores the model's train/eval mode after each call."""

    def encode(texts: Sequence[str]) -> np.ndarray:
        was_training = model.training  # type: ignore[attr-defined]
        try:
            return model.encode(  # type: ignore[attr-defined]
                list(texts),
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        finally:
            model.train(was_training)  # type: ignore[attr-defined]

    return encode


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# --- alignment and uniformity ------------------------------------------------------------------


def alignment(x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared distance between the normalised embeddings of positive pairs ``(x_i, y_i)``."""
    x, y = _normalize(x), _normalize(y)
    if x.shape != y.shape or x.ndim != 2 or len(x) == 0:
        raise ValueError(f"need two (n, d) arrays of equal shape, got {x.shape} and {y.shape}")
    return float(np.mean(np.sum((x - y) ** 2, axis=1)))


def uniformity(x: np.ndarray, t: float = 2.0) -> float:
    """``log`` of the mean Gaussian potential ``exp(-t ||u - v||^2)`` over all distinct pairs of rows."""
    x = _normalize(x)
    n = len(x)
    if n < 2:
        raise ValueError("uniformity needs at least two embeddings")
    sq = np.clip(2.0 - 2.0 * (x @ x.T), 0.0, 4.0)  # ||u - v||^2 of unit vectors
    upper = sq[np.triu_indices(n, k=1)]
    # log-mean-exp, shifted for stability
    logits = -t * upper
    top = logits.max()
    return float(top + np.log(np.mean(np.exp(logits - top))))


def alignment_uniformity(encode: Encoder, pairs: Sequence[tuple[str, str]]) -> dict[str, float]:
    """``{"alignment", "uniformity"}`` of ``pairs`` (uniformity over every distinct text of the pairs)."""
    left = encode([a for a, _ in pairs])
    right = encode([b for _, b in pairs])
    texts: dict[str, np.ndarray] = {}
    for (a, b), ea, eb in zip(pairs, left, right, strict=True):
        texts.setdefault(a, ea)
        texts.setdefault(b, eb)
    return {"alignment": alignment(left, right), "uniformity": uniformity(np.stack(list(texts.values())))}


# --- STS ---------------------------------------------------------------------------------------


def sts_spearman(encode: Encoder, pairs: Sequence[tuple[str, str, float]]) -> float:
    """Spearman's rho x100 between ``cos(f(s1), f(s2))`` and the gold scores."""
    if len(pairs) < 2:
        raise ValueError("Spearman needs at least two scored pairs")
    first = _normalize(encode([p[0] for p in pairs]))
    second = _normalize(encode([p[1] for p in pairs]))
    cosine = np.sum(first * second, axis=1)
    rho = spearmanr(cosine, [float(p[2]) for p in pairs]).statistic
    return float(100.0 * rho)


# --- retrieval ---------------------------------------------------------------------------------


def _hash_key(seed: int, doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest(), "big")


def sample_corpus(
    path: str | Path, judged: set[str], max_docs: int | None, *, seed: int = 0
) -> dict[str, str]:
    """Document id -> passage text: every judged document, plus the ``max_docs - len(judged)`` others
    with the smallest seeded hash (one streaming pass; the same sample whatever the file order)."""
    keep: dict[str, str] = {}
    room = None if max_docs is None else max(0, max_docs - len(judged))
    heap: list[tuple[int, str, str]] = []  # max-heap on the hash via negation
    for doc in iter_corpus(path):
        text = passage_text(doc["title"], doc["text"])
        if doc["_id"] in judged or room is None:
            keep[doc["_id"]] = text
        elif room > 0:
            item = (-_hash_key(seed, doc["_id"]), doc["_id"], text)
            if len(heap) < room:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    keep.update({doc_id: text for _, doc_id, text in heap})
    return keep


class RetrievalTask:
    """A BEIR split loaded once (queries, qrels, a corpus sample) and scored many times, in each of
    ``modes``: ``dense`` by exact search (metrics ``ndcg_at_10``, ...), ``lexical`` and ``hybrid`` in
    the platform's own vector store with BM25 vectors, as a collection would answer them (metrics
    ``lexical_ndcg_at_10``, ``hybrid_ndcg_at_10``, ...)."""

    def __init__(
        self,
        path: str | Path,
        split: str = "test",
        max_docs: int | None = None,
        *,
        seed: int = 0,
        modes: Sequence[RetrievalMode] = ("dense",),
        query_ids: Callable[[str], bool] | None = None,
        max_queries: int | None = None,
    ):
        """``query_ids`` keeps the queries it accepts (e.g. :func:`~counterpoint.datasets.is_dev_query`),
        ``max_queries`` the first N of them by id; the corpus sample keeps the documents they judge."""
        self.modes = tuple(dict.fromkeys(modes))
        root = Path(path)
        qrels = load_qrels(root / "qrels" / f"{split}.tsv")
        queries = load_queries(root / "queries.jsonl")
        kept = sorted(q for q in qrels if q in queries and (query_ids is None or query_ids(q)))
        self.qrels = {q: qrels[q] for q in kept[: max_queries or None]}
        self.queries = {qid: queries[qid] for qid in self.qrels}
        judged = {doc for docs in self.qrels.values() for doc in docs}
        self.corpus = sample_corpus(root, judged, max_docs, seed=seed)

    def __call__(self, encode: Encoder, *, top_k: int = 100) -> dict[str, float]:
        qids, dids = list(self.queries), list(self.corpus)
        queries, docs = encode([self.queries[q] for q in qids]), encode([self.corpus[d] for d in dids])
        metrics: dict[str, float] = {}
        if "dense" in self.modes:
            metrics.update(_scores(exact_search(queries, docs, qids, dids, top_k), self.qrels, ""))
        for mode, run in self._store_runs(queries, docs, top_k).items():
            metrics.update(_scores(run, self.qrels, f"{mode}_"))
        return metrics

    def _store_runs(
        self, queries: np.ndarray, docs: np.ndarray, top_k: int
    ) -> dict[str, dict[str, dict[str, float]]]:
        """The lexical and hybrid runs, ranked by position (MMR's order is not its scores' order)."""
        wanted = [m for m in self.modes if m != "dense"]
        runs = store_runs(self.queries, queries, self.corpus, docs, wanted, top_k)
        return {
            mode: {q: position_scores(list(hits)) for q, hits in run.items()} for mode, run in runs.items()
        }


def store_runs(
    queries: dict[str, str],
    query_vectors: np.ndarray,
    corpus: dict[str, str],
    doc_vectors: np.ndarray,
    modes: Sequence[RetrievalMode],
    top_k: int,
) -> dict[str, dict[str, dict[str, float]]]:
    """Each mode's run ``{qid: {doc_id: engine score}}`` (best first) from a throwaway collection of the
    embedded engine with BM25 vectors: the platform's own store, answering as a collection would."""
    if not modes:
        return {}
    from counterpoint.infra.vectors.base import Bm25Settings, CollectionSpec, Retrieval, VectorRecord
    from counterpoint.infra.vectors.edge import EdgeVectorStore

    with tempfile.TemporaryDirectory(prefix="retrieval-eval-") as tmp:
        store = EdgeVectorStore(Path(tmp))
        try:
            store.create_collection(CollectionSpec("eval", doc_vectors.shape[1], lexical=Bm25Settings()))
            records = [
                VectorRecord(d, v, {"text": corpus[d]}) for d, v in zip(corpus, doc_vectors, strict=True)
            ]
            for start in range(0, len(records), 512):
                store.upsert("eval", records[start : start + 512])
            runs: dict[str, dict[str, dict[str, float]]] = {}
            for mode in modes:
                runs[mode] = {
                    qid: {
                        h.id: h.score
                        for h in store.search("eval", vector, top_k, retrieval=Retrieval(mode, queries[qid]))
                    }
                    for qid, vector in zip(queries, query_vectors, strict=True)
                }
            return runs
        finally:
            store.close()


def _scores(run: dict[str, dict[str, float]], qrels: Qrels, prefix: str) -> dict[str, float]:
    metrics = evaluate_run(run, qrels).as_dict()
    metrics.pop("n_queries", None)
    return {f"{prefix}{k}": v for k, v in metrics.items()}


def retrieval_metrics(
    encode: Encoder, path: str | Path, split: str = "test", max_docs: int | None = None, *, seed: int = 0
) -> dict[str, float]:
    """``{"ndcg_at_10", "recall_at_100", "mrr_at_10"}`` in percent on a BEIR directory and split."""
    return RetrievalTask(path, split, max_docs, seed=seed)(encode)


# --- everything a training job evaluates ---------------------------------------------------------


def positive_pairs(kind: Kind, examples: Sequence[Example]) -> list[tuple[str, str]]:
    """Positive pairs for alignment: (anchor, positive) of pairs/triplets; scored pairs in the top 20%
    of the label range (SimCSE uses STS-B pairs scored above 4 of 5); none for plain sentences."""
    if kind in ("pairs", "triplets"):
        return [(e.texts[0], e.texts[1]) for e in examples]
    if kind == "scored_pairs":
        labels = [float(e.label or 0.0) for e in examples]
        if not labels:
            return []
        low, high = min(labels), max(labels)
        cut = high - 0.2 * (high - low)
        return [(e.texts[0], e.texts[1]) for e in examples if float(e.label or 0.0) >= cut]
    return []


def sts_source(path: str) -> DataSource:
    """A scored-pair file (TSV/JSONL/CSV with sentence1, sentence2, score) as a data source."""
    return DataSource(path=path, kind="scored_pairs")


class Evaluator:
    """The evaluations an :class:`EvalConfig` asks for, with their data loaded once.

    Calling it with an :data:`Encoder` returns a flat dict: ``sts_spearman``; ``ndcg_at_10``,
    ``recall_at_100``, ``mrr_at_10``; ``alignment`` (when the data has positive pairs) and ``uniformity``.
    """

    def __init__(self, config: EvalConfig, kind: Kind, examples: Sequence[Example], *, seed: int = 0) -> None:
        self.sts = (
            [(e.texts[0], e.texts[1], float(e.label or 0.0)) for e in iter_examples(sts_source(config.sts))]
            if config.sts
            else None
        )
        self.retrieval = (
            RetrievalTask(
                config.retrieval.path,
                config.retrieval.split,
                config.retrieval.max_docs,
                seed=seed,
                modes=config.retrieval.modes,
            )
            if config.retrieval
            else None
        )
        sample = list(examples)
        if len(sample) > config.uniformity_sample:
            sample = random.Random(seed).sample(sample, config.uniformity_sample)
        self.pairs = positive_pairs(kind, sample)
        self.sentences = list(dict.fromkeys(text for e in sample for text in e.texts))[
            : config.uniformity_sample
        ]

    def __call__(self, encode: Encoder) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.sts:
            metrics["sts_spearman"] = sts_spearman(encode, self.sts)
        if self.retrieval is not None:
            metrics.update(self.retrieval(encode))
        if self.pairs:
            metrics.update(alignment_uniformity(encode, self.pairs))
        elif len(self.sentences) >= 2:
            metrics["uniformity"] = uniformity(encode(self.sentences))
        return metrics
