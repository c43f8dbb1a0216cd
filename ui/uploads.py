"""Files uploaded on the collections page: documents (JSONL or CSV/TSV), queries and qrels.

JSON lines are read with `counterpoint.jsonl.iter_jsonl`, so a broken line is reported the same way
as everywhere else (``"docs.jsonl: line 7 is not valid JSON (...)"``); BEIR's ``_id`` becomes ``id``
as in the SDK (`counterpoint.client.with_id`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from typing import Any

from counterpoint.client import with_id
from counterpoint.errors import InvalidInput
from counterpoint.jsonl import iter_jsonl
from counterpoint.schemas import FieldType
from counterpoint.ui.search_inputs import coerce


def _decode(data: bytes, name: str) -> str:
    if name.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def _numbered_objects(name: str, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each JSON line of an upload (``iter_jsonl`` skips blank lines only)."""
    lines = text.splitlines()
    numbers = (number for number, line in enumerate(lines, start=1) if line.strip())
    for item in iter_jsonl(lines, name):
        yield next(numbers), item


def _typed(value: str, kind: FieldType | None) -> Any:
    if kind is None or value == "":
        return value
    try:
        return coerce(value, kind)
    except InvalidInput:
        return value


def _csv_documents(name: str, text: str, indexes: Mapping[str, FieldType]) -> list[dict[str, Any]]:
    stem = name.removesuffix(".gz").lower()
    reader = csv.DictReader(io.StringIO(text), delimiter="\t" if stem.endswith(".tsv") else ",")
    missing = {"id", "text"} - set(reader.fieldnames or [])
    if missing:
        raise InvalidInput(f"{name}: the CSV needs columns id and text (missing {sorted(missing)})")
    docs: list[dict[str, Any]] = []
    for row in reader:
        meta = {
            k: _typed(v, indexes.get(k))
            for k, v in row.items()
            if k not in ("id", "text", "title") and k and v not in (None, "")
        }
        doc: dict[str, Any] = {"id": row["id"], "text": row["text"], "metadata": meta}
        if row.get("title"):
            doc["title"] = row["title"]
        docs.append(doc)
    return docs


def parse_documents(
    name: str, data: bytes, indexes: Mapping[str, FieldType] | None = None
) -> list[dict[str, Any]]:
    """Documents from an uploaded JSONL (BEIR ``_id`` accepted) or CSV file.

    A CSV needs ``id`` and ``text`` columns; ``title`` is optional and every other column goes to
    ``metadata``, converted to the collection's payload index type where one is declared.
    """
    text = _decode(data, name)
    if name.removesuffix(".gz").lower().endswith((".csv", ".tsv")):
        return _csv_documents(name, text, indexes or {})
    docs: list[dict[str, Any]] = []
    for number, item in _numbered_objects(name, text):
        item = with_id(item)
        if "id" not in item or "text" not in item:
            raise InvalidInput(f"{name}: line {number} needs 'id' and 'text'")
        extra = {k: item.pop(k) for k in list(item) if k not in ("id", "text", "title", "metadata")}
        if extra:
            item["metadata"] = {**extra, **(item.get("metadata") or {})}
        docs.append(item)
    return docs


def parse_queries(name: str, data: bytes) -> dict[str, str]:
    """Queries from a BEIR ``queries.jsonl`` (``_id``, ``text``) or a TSV ``id<TAB>text`` file."""
    text = _decode(data, name)
    queries: dict[str, str] = {}
    if name.removesuffix(".gz").lower().endswith(".tsv"):
        for row in csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) >= 2 and row[0] not in ("query-id", "_id", "id"):
                queries[row[0]] = row[1]
        return queries
    for number, item in _numbered_objects(name, text):
        qid = item.get("_id", item.get("id"))
        if qid is None or "text" not in item:
            raise InvalidInput(f"{name}: line {number} needs '_id' and 'text'")
        queries[str(qid)] = item["text"]
    return queries


def parse_qrels(name: str, data: bytes) -> dict[str, dict[str, int]]:
    """BEIR qrels TSV (header ``query-id  corpus-id  score``), read with ``counterpoint.datasets``."""
    import tempfile

    from counterpoint.datasets import load_qrels

    suffix = ".tsv.gz" if name.endswith(".gz") else ".tsv"
    with tempfile.NamedTemporaryFile(suffix=suffix) as handle:
        handle.write(data)
        handle.flush()
        try:
            return load_qrels(handle.name)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(str(exc).replace(handle.name, name)) from None
