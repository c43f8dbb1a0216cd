"""Hard-negative mining: positives never become negatives, near-positives are filtered, counts add up."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from counterpoint.errors import InvalidInput
from counterpoint.workers.mining import ExactRetriever, Hits, mine_collection, mine_triplets, write_jsonl

CORPUS = {f"d{i}": f"document {i}" for i in range(6)}
QUERIES = {"q1": "query one", "q2": "query two", "q3": "query three"}
QRELS = {"q1": {"d0": 1, "d1": 1}, "q2": {"d2": 1}, "q3": {"missing": 1}}


def ranked(scores: dict[str, dict[str, float]]) -> object:
    """A retriever returning fixed rankings keyed by query text."""
    by_text = {QUERIES[q]: sorted(s.items(), key=lambda kv: -kv[1]) for q, s in scores.items()}

    def retrieve(queries: Sequence[str], k: int) -> list[Hits]:
        return [by_text.get(q, [])[:k] for q in queries]

    return retrieve


def test_negatives_skip_positives_and_likely_false_negatives() -> None:
    retrieve = ranked(
        {
            "q1": {"d0": 0.9, "d3": 0.88, "d1": 0.8, "d4": 0.7, "d5": 0.1},  # d3 > 0.95 * 0.8: filtered
            "q2": {"d2": 0.9, "d5": 0.5},
        }
    )
    triplets, report = mine_triplets(QUERIES, QRELS, CORPUS, retrieve, top_k=5)  # type: ignore[arg-type]
    assert [(t["positive"], t["negative"]) for t in triplets] == [
        ("document 0", "document 4"),
        ("document 1", "document 5"),  # a second positive gets the next negative
        ("document 2", "document 5"),
    ]
    assert all(t["negative"] not in ("document 0", "document 1") for t in triplets[:2])
    assert report.as_dict() == {
        "queries": 3,
        "triplets": 3,
        "candidates": 7,
        "dropped_positives": 3,
        "dropped_false_negatives": 1,
        "dropped_skip_top": 0,
        "queries_without_negative": 0,
        "missing_positives": 1,
    }
    assert "not in the corpus" in report.notes[0]


def test_skip_top_and_no_filter() -> None:
    retrieve = ranked({"q2": {"d3": 0.99, "d4": 0.98, "d2": 0.5}})
    triplets, report = mine_triplets(
        QUERIES,
        {"q2": {"d2": 1}},
        CORPUS,
        retrieve,
        skip_top=1,
        max_score_ratio=None,  # type: ignore[arg-type]
    )
    assert [t["negative"] for t in triplets] == ["document 4"] and report.dropped_skip_top == 1
    _, strict = mine_triplets(QUERIES, {"q2": {"d2": 1}}, CORPUS, retrieve)  # type: ignore[arg-type]
    assert strict.queries_without_negative == 1 and strict.triplets == 0


def test_bad_parameters() -> None:
    with pytest.raises(InvalidInput, match="top_k"):
        mine_triplets(QUERIES, QRELS, CORPUS, ranked({}), top_k=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="max_score_ratio"):
        mine_triplets(QUERIES, QRELS, CORPUS, ranked({}), max_score_ratio=1.5)  # type: ignore[arg-type]


def test_exact_retriever_and_the_file_the_training_job_reads(tmp_path: Path) -> None:
    from counterpoint.workers.data import DataSource, load_examples

    vocab = {"alpha": 0, "beta": 1, "gamma": 2}

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = np.full((len(texts), 3), 0.1, dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                if word in vocab:
                    out[i, vocab[word]] += 1
        return out

    corpus = {"a": "alpha", "b": "alpha beta", "c": "gamma"}
    retriever = ExactRetriever.from_corpus(encode, corpus)
    assert [d for d, _ in retriever(["alpha"], 3)[0]] == ["a", "b", "c"]
    triplets, _ = mine_triplets({"q": "alpha"}, {"q": {"a": 1}}, corpus, retriever, max_score_ratio=None)
    path = tmp_path / "triplets.jsonl"
    assert write_jsonl(triplets, path) == 1
    assert json.loads(path.read_text()) == {"anchor": "alpha", "positive": "alpha", "negative": "alpha beta"}
    kind, examples = load_examples(DataSource(path=str(path)))
    assert kind == "triplets" and examples[0].texts == ("alpha", "alpha", "alpha beta")


def test_several_negatives_per_row_are_read_back_as_n_tuples(tmp_path: Path) -> None:
    from counterpoint.workers.data import DataSource, load_examples

    retrieve = ranked(
        {
            "q1": {"d0": 0.9, "d1": 0.8, "d3": 0.7, "d4": 0.6, "d5": 0.5},
            "q2": {"d2": 0.9, "d5": 0.5},  # one survivor: the row's negatives repeat it
        }
    )
    triplets, report = mine_triplets(QUERIES, QRELS, CORPUS, retrieve, top_k=5, negatives=2)  # type: ignore[arg-type]
    assert [(t["positive"], t["negative"], t["negative_2"]) for t in triplets] == [
        ("document 0", "document 3", "document 4"),
        ("document 1", "document 5", "document 3"),  # the second positive starts at the next survivors
        ("document 2", "document 5", "document 5"),
    ]
    assert report.triplets == 3
    path = tmp_path / "groups.jsonl"
    write_jsonl(triplets, path)
    kind, examples = load_examples(DataSource(path=str(path)))
    assert kind == "triplets" and examples[0].texts == ("query one", "document 0", "document 3", "document 4")
    with pytest.raises(InvalidInput, match="negatives must be in 1..top_k"):
        mine_triplets(QUERIES, QRELS, CORPUS, retrieve, top_k=5, negatives=6)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rows", "words"),
    [
        ([{"anchor": "a", "positive": "p", "negative": "n", "negative_3": "m"}], "without gaps"),
        (
            [
                {"anchor": "a", "positive": "p", "negative": "n", "negative_2": "m"},
                {"anchor": "a", "positive": "p", "negative": "n"},
            ],
            "row 2 has no column 'negative_2'",
        ),
    ],
)
def test_ragged_negative_columns_are_refused(tmp_path: Path, rows: list[dict], words: str) -> None:
    from counterpoint.workers.data import DataSource, load_examples

    path = tmp_path / "bad.jsonl"
    write_jsonl(rows, path)
    with pytest.raises(InvalidInput, match=words):
        load_examples(DataSource(path=str(path)))


class FakeCollectionClient:
    """The two SDK calls `mine_collection` makes, over fixed rankings keyed by query text."""

    def __init__(self, rankings: dict[str, dict[str, float]]) -> None:
        self.rankings = rankings
        self.searched: list[str] = []

    def get_collection(self, name: str) -> object:
        return SimpleNamespace(name=name, count=len(CORPUS))

    def search_many(self, collection: str, queries: dict[str, str], *, top_k: int, on_progress: Any) -> Any:
        self.searched += queries.values()
        on_progress(len(queries))
        return {qid: dict(list(self.rankings.get(text, {}).items())[:top_k]) for qid, text in queries.items()}


def beir_dir(root: Path) -> Path:
    """A BEIR directory holding CORPUS, QUERIES and QRELS (split ``train``)."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": d, "title": "", "text": t}) + "\n" for d, t in CORPUS.items())
    )
    (root / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    rows = [f"{q}\t{d}\t{g}" for q, docs in QRELS.items() for d, g in docs.items()]
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    return root


def test_mine_collection_uses_the_collections_search(tmp_path: Path) -> None:
    root = beir_dir(tmp_path / "beir")
    client = FakeCollectionClient(
        {"query one": {"d0": 0.9, "d4": 0.5, "d1": 0.8}, "query two": {"d2": 0.9, "d5": 0.4}}
    )
    seen: list[tuple[int, int]] = []
    triplets, report = mine_collection(
        client, "papers", root, "train", progress=lambda done, total: seen.append((done, total)), top_k=5
    )
    assert {(t["anchor"], t["negative"]) for t in triplets} == {
        ("query one", "document 4"),
        ("query two", "document 5"),
    }
    assert report.dropped_positives == 3 and seen[-1] == (3, 3)
    with pytest.raises(InvalidInput, match="test split"):
        mine_collection(client, "papers", root, "test")


def test_mine_collection_refuses_a_collection_without_the_data_set(tmp_path: Path) -> None:
    root = beir_dir(tmp_path / "beir")
    client = FakeCollectionClient({"query one": {"d4": 0.5}, "query two": {"d5": 0.4}})
    with pytest.raises(InvalidInput, match="returned none of the train queries' positives in their top 7"):
        mine_collection(client, "papers", root, "train", top_k=7)
