"""Typed loaders for the retrieval (BEIR layout) and sentence-similarity (STS-B) data sets.

Every loader reads plain or gzip'ed files transparently: give ``corpus.jsonl`` or
``corpus.jsonl.gz`` (or a directory, where either name is looked up). The shipped copies inside
the package (``counterpoint/data``, see its README for licenses) are the one default source, so
a clone or an installed wheel evaluates without any shared folder.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypedDict

from counterpoint.data import DATA_DIR
from counterpoint.jsonl import iter_jsonl
from counterpoint.textfiles import PathLike
from counterpoint.textfiles import open_text as open_text  # re-exported: data files open through here
from counterpoint.textfiles import resolve as resolve  # re-exported


class BeirDocument(TypedDict):
    """A BEIR corpus line: ``{"_id": str, "title": str, "text": str}``."""

    _id: str
    title: str
    text: str


class IngestDocument(TypedDict):
    """The document shape of ``POST /v1/collections/{name}/documents`` (``schemas.Document``)."""

    id: str
    title: str
    text: str


class StsPair(NamedTuple):
    """One STS-B row: two sentences and a human similarity score in [0, 5]."""

    s1: str
    s2: str
    score: float


Qrels = dict[str, dict[str, int]]
"""Relevance judgements: query id -> {document id: grade}, the shape pytrec_eval expects."""


# --- file access -------------------------------------------------------------------------------


def _corpus_file(path: PathLike) -> Path:
    path = Path(path)
    return path / "corpus.jsonl" if path.is_dir() else path


# --- BEIR --------------------------------------------------------------------------------------


def iter_corpus(path: PathLike) -> Iterator[BeirDocument]:
    """Stream the documents of a BEIR corpus (a ``corpus.jsonl[.gz]`` file or its data-set directory).

    Streaming keeps ingest memory flat whatever the corpus size; a missing title becomes ``""``.
    """
    for row in iter_jsonl(_corpus_file(path)):
        yield {"_id": str(row["_id"]), "title": row.get("title") or "", "text": row["text"]}


def to_ingest_document(doc: BeirDocument) -> IngestDocument:
    """Map a BEIR document onto our ingest shape ``{"id", "title", "text"}``."""
    return {"id": doc["_id"], "title": doc["title"], "text": doc["text"]}


def passage_text(title: str, text: str) -> str:
    """The text a bi-encoder embeds for a document: ``" ".join([title, text]).strip()`` as BEIR does.

    BEIR's SentenceBERT wrapper concatenates title and body with one space; embedding documents the
    same way keeps our numbers comparable with published figures.
    """
    return " ".join([title, text]).strip()


def load_queries(path: PathLike) -> dict[str, str]:
    """Read ``queries.jsonl[.gz]``: query id -> query text."""
    return {str(row["_id"]): row["text"] for row in iter_jsonl(path)}


def _tsv_rows(path: PathLike, header: list[str], *, whole_header: bool) -> Iterator[list[str]]:
    """The three-column rows of a TSV file below its header (``header``, or its first name unless
    ``whole_header``); blank lines skipped, any other column count a ``ValueError`` naming the line.

    Quoting is off (``QUOTE_NONE``) because texts contain unbalanced double quotes, which the
    default dialect would swallow across lines.
    """
    with open_text(path) as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        found = next(reader, None)
        if found is None:
            return
        if (found if whole_header else found[:1]) != (header if whole_header else header[:1]):
            shown = "\\t".join(header)
            raise ValueError(f"{path}: expected a '{shown}' header, got {found!r}")
        for row in reader:
            if not row:
                continue
            if len(row) != 3:
                raise ValueError(f"{path}: line {reader.line_num} has {len(row)} columns, expected 3")
            yield row


def load_qrels(path: PathLike) -> Qrels:
    """Read a BEIR qrels TSV (header ``query-id  corpus-id  score``): query id -> {doc id: grade}."""
    qrels: Qrels = {}
    for query_id, doc_id, score in _tsv_rows(path, ["query-id", "corpus-id", "score"], whole_header=False):
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


@dataclass(frozen=True)
class BeirDataset:
    """A data set in BEIR layout: corpus, queries, and qrels per split read on demand."""

    path: Path
    corpus: dict[str, dict[str, str]] = field(repr=False)
    queries: dict[str, str] = field(repr=False)

    def qrels(self, split: str = "test") -> Qrels:
        """Relevance judgements of ``split`` (``qrels/{split}.tsv[.gz]``)."""
        return load_qrels(self.path / "qrels" / f"{split}.tsv")

    def split_queries(self, split: str = "test") -> dict[str, str]:
        """The queries judged in ``split``, in qrels order: what an evaluation encodes."""
        return {qid: self.queries[qid] for qid in self.qrels(split)}

    def splits(self) -> list[str]:
        """Names of the splits that have a qrels file (``qrels/{split}.tsv`` or ``.tsv.gz``)."""
        names = set()
        for file in (self.path / "qrels").iterdir():
            for suffix in (".tsv", ".tsv.gz"):
                if file.name.endswith(suffix):
                    names.add(file.name.removesuffix(suffix))
        return sorted(names)


def load_beir(path: PathLike) -> BeirDataset:
    """Load a BEIR data-set directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/``; each may be .gz)."""
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a BEIR data-set directory")
    corpus = {doc["_id"]: {"title": doc["title"], "text": doc["text"]} for doc in iter_corpus(root)}
    return BeirDataset(path=root, corpus=corpus, queries=load_queries(root / "queries.jsonl"))


# --- STS-B -------------------------------------------------------------------------------------


def is_dev_query(query_id: str) -> bool:
    """The dev split Counterpoint carves from a *train* split (test is never tuned on): the queries
    whose id hashes to 0 mod 10 (sha256), 73 of SciFact's 809 train queries."""
    return int(hashlib.sha256(query_id.encode()).hexdigest(), 16) % 10 == 0


def load_sts(path: PathLike) -> list[StsPair]:
    """Read an STS-B TSV (header ``sentence1  sentence2  score``) into (s1, s2, score) rows."""
    rows = _tsv_rows(path, ["sentence1", "sentence2", "score"], whole_header=True)
    return [StsPair(s1, s2, float(score)) for s1, s2, score in rows]


# --- shipped copies ----------------------------------------------------------------------------


def default_scifact_dir() -> Path:
    """Directory of the shipped SciFact copy (BEIR layout, gzip'ed; CC BY-NC 2.0, non-commercial)."""
    return DATA_DIR / "scifact"


def default_scifact() -> BeirDataset:
    """Load the shipped SciFact copy: 5,183 documents, 1,109 queries, splits ``train`` and ``test``."""
    return load_beir(default_scifact_dir())


def default_stsb_dir() -> Path:
    """Directory of the shipped STS-B copy: ``train``/``dev``/``test``.tsv.gz, read with ``load_sts``."""
    return DATA_DIR / "stsb"
