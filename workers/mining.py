"""Hard-negative mining: for each training query, the top retrieved documents that are not its positives.

A hard negative is a document the current retriever ranks high although it is not relevant; MNRL with
such a negative per pair learns more than with random in-batch negatives alone (DPR, ANCE). The top of
a ranking also holds *false* negatives, relevant documents nobody judged, so candidates are filtered
(NV-Retriever, Moreira et al. 2024, "TopK-PercPos"): a candidate scoring above ``max_score_ratio`` x
the positive's score is dropped as a likely positive. The first ``skip_top`` candidates can also be
skipped outright (RocketQA's denoising in its simplest form).

The retriever is a callable, so the same mining runs on an in-process exact index (`mine_beir`)
or on a live collection through the gateway's search (`mine_collection`, used by the CLI). Output: one JSONL triplet (anchor, positive, negative)
per (query, positive) pair, which `data.kind: triplets` reads; with ``negatives=k`` a row carries k
negatives (``negative``, ``negative_2`` .. ``negative_k``, sentence-transformers' n-tuple columns), the
group a listwise reranker loss scores each query against.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np

from counterpoint.errors import InvalidInput
from counterpoint.evaluation import exact_search
from counterpoint.workers.data import negative_columns

Hits = list[tuple[str, float]]
"""One query's ranking: (document id, score), best first."""
Retriever = Callable[[Sequence[str], int], list[Hits]]
"""``(query texts, k) -> one ranking per query``."""
Progress = Callable[[int, int], None]
"""``(done, total)``: queries searched, or corpus documents embedded."""
DEFAULT_TOP_K = 30


class MiningOptions(TypedDict, total=False):
    """How candidates are filtered (see `mine_triplets`); `mine_beir` and `mine_collection` pass them on."""

    top_k: int
    skip_top: int
    max_score_ratio: float | None
    negatives: int


class ExactRetriever:
    """Exact cosine search over an in-memory corpus embedded once with ``encode``."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], np.ndarray],
        doc_ids: Sequence[str],
        doc_embeddings: np.ndarray,
    ) -> None:
        self.encode = encode
        self.doc_ids = list(doc_ids)
        self.doc_embeddings = doc_embeddings

    @classmethod
    def from_corpus(
        cls, encode: Callable[[Sequence[str]], np.ndarray], corpus: Mapping[str, str]
    ) -> ExactRetriever:
        return cls(encode, list(corpus), encode(list(corpus.values())))

    def __call__(self, queries: Sequence[str], k: int) -> list[Hits]:
        ids = [str(i) for i in range(len(queries))]
        run = exact_search(self.encode(queries), self.doc_embeddings, ids, self.doc_ids, top_k=k)
        return [sorted(run[i].items(), key=lambda kv: -kv[1]) for i in ids]


@dataclass
class MiningReport:
    """What mining found: counts for the CLI and MLflow."""

    queries: int = 0
    triplets: int = 0
    candidates: int = 0
    dropped_positives: int = 0
    dropped_false_negatives: int = 0
    dropped_skip_top: int = 0
    queries_without_negative: int = 0
    missing_positives: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


def mine_triplets(
    queries: Mapping[str, str],
    positives: Mapping[str, Mapping[str, int]],
    corpus: Mapping[str, str],
    retrieve: Retriever,
    *,
    top_k: int = DEFAULT_TOP_K,
    skip_top: int = 0,
    max_score_ratio: float | None = 0.95,
    negatives: int = 1,
    batch_size: int = 64,
) -> tuple[list[dict[str, str]], MiningReport]:
    """Triplets ``{"anchor", "positive", "negative"}`` and a report of what was filtered.

    ``positives`` are qrels (query id -> document id -> grade; grade > 0 is relevant). For each
    relevant pair the negative is the best-ranked surviving candidate not yet used for that query,
    so a query with several positives gets different negatives. ``negatives=k`` gives each row the
    next k surviving candidates (cycling when fewer survive), in columns named by `negative_columns`.
    """
    if not 0 < top_k <= 1000:
        raise InvalidInput(f"top_k must be in 1..1000, got {top_k}")
    if max_score_ratio is not None and not 0 < max_score_ratio <= 1:
        raise InvalidInput(f"max_score_ratio must be in (0, 1], got {max_score_ratio}")
    if not 1 <= negatives <= top_k:
        raise InvalidInput(f"negatives must be in 1..top_k ({top_k}), got {negatives}")
    names = negative_columns(negatives)
    report = MiningReport()
    qids = [q for q in positives if q in queries and any(g > 0 for g in positives[q].values())]
    triplets: list[dict[str, str]] = []
    for start in range(0, len(qids), batch_size):
        chunk = qids[start : start + batch_size]
        rankings = retrieve([queries[q] for q in chunk], top_k + skip_top)
        for qid, hits in zip(chunk, rankings, strict=True):
            report.queries += 1
            relevant = {d for d, g in positives[qid].items() if g > 0}
            present = [d for d in sorted(relevant) if d in corpus]
            report.missing_positives += len(relevant) - len(present)
            if not present:
                continue
            scores = dict(hits)
            # the bar: the weakest positive's score when it was retrieved, else the candidates' best
            pos_scores = [scores[d] for d in present if d in scores]
            bar = min(pos_scores) if pos_scores else (hits[0][1] if hits else 0.0)
            survivors: list[str] = []
            for rank, (doc_id, score) in enumerate(hits):
                report.candidates += 1
                if doc_id in relevant:
                    report.dropped_positives += 1
                elif rank < skip_top:
                    report.dropped_skip_top += 1
                elif max_score_ratio is not None and score > max_score_ratio * bar:
                    report.dropped_false_negatives += 1
                elif doc_id in corpus:
                    survivors.append(doc_id)
            if not survivors:
                report.queries_without_negative += 1
                continue
            for i, doc_id in enumerate(present):
                row = {"anchor": queries[qid], "positive": corpus[doc_id]}
                for j, name in enumerate(names):
                    row[name] = corpus[survivors[(i * negatives + j) % len(survivors)]]
                triplets.append(row)
    report.triplets = len(triplets)
    if report.queries and report.missing_positives:
        report.notes.append(
            f"{report.missing_positives} judged positives are not in the corpus searched: they were skipped"
        )
    return triplets, report


def write_jsonl(rows: Iterable[Mapping[str, str]], path: str | Path) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def load_split(
    root: str | Path, split: str
) -> tuple[dict[str, str], dict[str, dict[str, int]], dict[str, str]]:
    """A BEIR split to mine: its queries, its qrels and the corpus texts (``title``, then ``text``).

    The test split is refused: mining it would train on test data.
    """
    from counterpoint.datasets import iter_corpus, load_qrels, load_queries, passage_text

    if split == "test":
        raise InvalidInput("mining the test split would train on test data; mine 'train' (or a dev split)")
    root = Path(root)
    qrels = load_qrels(root / "qrels" / f"{split}.tsv")
    queries = load_queries(root / "queries.jsonl")
    corpus = {d["_id"]: passage_text(d["title"], d["text"]) for d in iter_corpus(root)}
    return queries, qrels, corpus


def mine_beir(
    root: str | Path,
    split: str,
    *,
    model: str,
    max_seq_length: int = 256,
    progress: Progress | None = None,
    **options: Unpack[MiningOptions],
) -> tuple[list[dict[str, str]], MiningReport]:
    """Mine a BEIR split with ``model`` (a packaged name or directory) over the whole corpus.

    ``progress(done, total)`` is called as the corpus is embedded (the long part: minutes on CPU).
    """
    from counterpoint.models.embedder import TextEmbedder

    queries, qrels, corpus = load_split(root, split)
    embedder = TextEmbedder(model, max_seq_length=max_seq_length, batch_size=32)
    ids = list(corpus)
    step = 256
    vectors = []
    for start in range(0, len(ids), step):
        vectors.append(embedder.embed([corpus[d] for d in ids[start : start + step]]).vectors)
        if progress is not None:
            progress(min(start + step, len(ids)), len(ids))
    retriever = ExactRetriever(
        lambda texts: embedder.embed(list(texts)).vectors, ids, np.concatenate(vectors)
    )
    return mine_triplets(queries, qrels, corpus, retriever, **options)


def mine_collection(
    client: Any,
    collection: str,
    root: str | Path,
    split: str,
    *,
    progress: Progress | None = None,
    **options: Unpack[MiningOptions],
) -> tuple[list[dict[str, str]], MiningReport]:
    """Mine a BEIR split with a live collection's search (``client``: the SDK's `Client`) as the retriever.

    The BEIR directory gives the queries, the qrels and the positives' and negatives' text;
    ``progress(done, total)`` counts the queries searched. A collection that returns none of the
    positives does not hold this data set: that is an ``InvalidInput``, not an empty file.
    """
    queries, qrels, corpus = load_split(root, split)
    client.get_collection(collection)  # NotFound before any search
    done = 0

    def searched(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, len(qrels))

    def retrieve(texts: Sequence[str], k: int) -> list[Hits]:
        run = client.search_many(
            collection, {str(i): t for i, t in enumerate(texts)}, top_k=k, on_progress=searched
        )
        return [sorted(run[str(i)].items(), key=lambda kv: -kv[1]) for i in range(len(texts))]

    triplets, report = mine_triplets(queries, qrels, corpus, retrieve, **options)
    if report.queries and not report.dropped_positives:
        top_k = options.get("top_k", DEFAULT_TOP_K)
        raise InvalidInput(
            f"collection '{collection}' returned none of the {split} queries' positives in their top {top_k}: "
            f"it does not hold this data set's documents (or they are not indexed yet); index the corpus "
            f"of {root} first"
        )
    return triplets, report
