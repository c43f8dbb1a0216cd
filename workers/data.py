"""Training data: pairs, triplets, scored pairs and unlabeled sentences from JSONL/TSV/CSV/Parquet/BEIR.

Every source becomes a stream of `Example`s, whose ``texts`` are in the order the losses
expect (anchor, positive[, negative, negative_2 ..]) or (sentence1, sentence2) with a ``label``. Files are
read lazily so a large corpus never has to fit in memory; `check_source` reads only the
first rows, so a bad config fails before a job is submitted.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from counterpoint.datasets import iter_corpus, load_qrels, load_queries, open_text, passage_text, resolve
from counterpoint.errors import InvalidInput
from counterpoint.jsonl import iter_jsonl

Kind = Literal["pairs", "triplets", "scored_pairs", "sentences"]
Format = Literal["auto", "jsonl", "tsv", "csv", "parquet", "beir"]

ROLES: dict[Kind, tuple[str, ...]] = {
    "pairs": ("anchor", "positive"),
    "triplets": ("anchor", "positive", "negative"),
    "scored_pairs": ("sentence1", "sentence2", "score"),
    "sentences": ("text",),
}


@dataclass(frozen=True)
class Example:
    texts: tuple[str, ...]
    label: float | None = None


class HardNegatives(BaseModel):
    """Mine a hard negative per (query, positive) before training (see `counterpoint.workers.mining`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("all-MiniLM-L6-v2", description="Retriever used to mine: packaged name or directory.")
    top_k: int = Field(30, ge=1, le=1000, description="Candidates retrieved per query.")
    skip_top: int = Field(0, ge=0, description="Top candidates skipped outright.")
    max_score_ratio: float | None = Field(
        0.95, gt=0, le=1, description="Drop candidates above this x the positive's score (false negatives)."
    )
    max_seq_length: int = Field(256, ge=8, le=8192)
    negatives: int = Field(
        1, ge=1, le=64, description="Hard negatives per (query, positive): the group a reranker ranks."
    )


class DataSource(BaseModel):
    """Where training examples come from and how to read them."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File, or a BEIR data-set directory (corpus.jsonl, queries.jsonl, qrels/).")
    format: Format = "auto"
    kind: Kind | None = Field(None, description="Example type; detected from the columns when omitted.")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Role -> column name, e.g. {'anchor': 'query', 'positive': 'doc'}."
    )
    split: str = Field("train", description="BEIR qrels split used for query->document pairs.")
    limit: int | None = Field(None, ge=1, description="Read at most this many examples.")
    hard_negatives: HardNegatives | None = Field(
        None, description="BEIR only: mine a hard negative per pair before training (triplets)."
    )

    def resolved_format(self) -> Format:
        if self.format != "auto":
            return self.format
        path = Path(self.path)
        if path.is_dir():
            return "beir"
        name = path.name.removesuffix(".gz")
        for suffix, fmt in ((".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "tsv"), (".csv", "csv")):
            if name.endswith(suffix):
                return fmt  # type: ignore[return-value]
        if name.endswith(".parquet"):
            return "parquet"
        raise InvalidInput(f"data.path '{self.path}': cannot tell the format; set data.format")


# --- raw rows ------------------------------------------------------------------------------


def _rows_delimited(path: Path, delimiter: str) -> Iterator[dict[str, Any]]:
    with open_text(path) as handle:
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        yield from csv.DictReader(handle, delimiter=delimiter, quoting=quoting)


def _rows_parquet(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        yield from batch.to_pylist()


def _rows_beir(path: Path, split: str) -> Iterator[dict[str, Any]]:
    """Query -> relevant document pairs from a BEIR data set's qrels."""
    queries = load_queries(path / "queries.jsonl")
    qrels = load_qrels(path / "qrels" / f"{split}.tsv")
    wanted = {doc for docs in qrels.values() for doc in docs}
    corpus = {d["_id"]: passage_text(d["title"], d["text"]) for d in iter_corpus(path) if d["_id"] in wanted}
    for qid in sorted(qrels):
        for doc_id, grade in sorted(qrels[qid].items()):
            if grade > 0 and qid in queries and doc_id in corpus:
                yield {"anchor": queries[qid], "positive": corpus[doc_id]}


def iter_rows(source: DataSource) -> Iterator[dict[str, Any]]:
    fmt = source.resolved_format()
    if fmt == "beir":
        path = Path(source.path)
        if not (path / "qrels").is_dir():
            raise InvalidInput(f"data.path '{source.path}' is not a BEIR directory (no qrels/ inside)")
        return _rows_beir(path, source.split)
    try:
        path = resolve(source.path)
    except FileNotFoundError:
        raise InvalidInput(f"data.path: no such file '{source.path}'") from None
    if fmt == "jsonl":
        return iter_jsonl(path)
    if fmt == "parquet":
        return _rows_parquet(path)
    return _rows_delimited(path, "\t" if fmt == "tsv" else ",")


# --- examples ------------------------------------------------------------------------------


def detect_kind(columns: set[str], mapping: dict[str, str]) -> Kind:
    """The richest example type whose roles are all present (after ``mapping``)."""
    present = columns | set(mapping)
    for kind in ("triplets", "scored_pairs", "pairs", "sentences"):
        if all(role in present for role in ROLES[kind]):  # type: ignore[index]
            return kind  # type: ignore[return-value]
    raise InvalidInput(
        f"cannot tell the example type from columns {sorted(columns)}; expected one of "
        + "; ".join(f"{k}: {', '.join(r)}" for k, r in ROLES.items())
        + " (or map them with data.columns)"
    )


def check_source(source: DataSource) -> Kind:
    """Read the first row: the file exists, parses, and has every column the kind needs."""
    if source.hard_negatives is not None:
        if source.resolved_format() != "beir":
            raise InvalidInput("data.hard_negatives: mining needs a BEIR directory in data.path")
        if source.split == "test":
            raise InvalidInput("data.split: training on the test split is refused; use 'train'")
        if next(iter_rows(source), None) is None:
            raise InvalidInput(f"data.path '{source.path}' holds no {source.split} pairs")
        return "triplets"
    rows = iter_rows(source)
    first = next(rows, None)
    if first is None:
        raise InvalidInput(f"data.path '{source.path}' holds no rows")
    kind = source.kind or detect_kind(set(first), source.columns)
    for role in ROLES[kind]:
        column = source.columns.get(role, role)
        if column not in first:
            raise InvalidInput(
                f"data.columns: column '{column}' (role '{role}' of {kind}) is not in {source.path}; "
                f"columns are {sorted(first)}"
            )
    return kind


def negative_columns(k: int) -> list[str]:
    """The columns of a row's ``k`` hard negatives: ``negative``, ``negative_2`` .. ``negative_k``."""
    return ["negative"] + [f"negative_{j}" for j in range(2, k + 1)]


def extra_negative_columns(row: Mapping[str, Any]) -> list[str]:
    """A triplet row's hard negatives after the first (n-tuple rows, sentence-transformers' naming):
    ``negative_2`` .. ``negative_k``, which must be numbered without gaps."""
    numbers = sorted(int(m.group(1)) for key in row if (m := _EXTRA_NEGATIVE.fullmatch(str(key))))
    if numbers and numbers != list(range(2, len(numbers) + 2)):
        raise InvalidInput(
            "hard-negative columns must be negative, negative_2 .. negative_k without gaps; got "
            + ", ".join(f"negative_{n}" for n in numbers)
        )
    return negative_columns(len(numbers) + 1)[1:]


_EXTRA_NEGATIVE = re.compile(r"negative_(\d+)")


def iter_examples(source: DataSource) -> Iterator[Example]:
    """Stream `Example`s; the kind is checked on the first row."""
    if source.hard_negatives is not None:
        raise InvalidInput(
            "data.hard_negatives: mine first (the training driver does, see mine_hard_negatives)"
        )
    kind = check_source(source)
    roles = ROLES[kind]
    columns = [source.columns.get(role, role) for role in roles]
    if kind == "triplets":
        first = next(iter_rows(source), {})
        columns += extra_negative_columns(first)
    for count, row in enumerate(iter_rows(source)):
        if source.limit is not None and count >= source.limit:
            return
        if kind == "scored_pairs":
            yield Example((str(row[columns[0]]), str(row[columns[1]])), float(row[columns[2]]))
            continue
        try:
            yield Example(tuple(str(row[c]) for c in columns))
        except KeyError as exc:
            raise InvalidInput(
                f"{source.path}: row {count + 1} has no column {exc} (the first row has it)"
            ) from None


def load_examples(source: DataSource) -> tuple[Kind, list[Example]]:
    return check_source(source), list(iter_examples(source))
