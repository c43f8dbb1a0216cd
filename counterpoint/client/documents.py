"""Documents to ingest: read from JSONL files (BEIR's ``_id`` accepted) and cut into request batches."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from counterpoint.jsonl import iter_jsonl


def with_id(item: dict[str, Any]) -> dict[str, Any]:
    """A document object with BEIR's ``_id`` renamed ``id`` (unless it has an ``id`` already)."""
    if "_id" in item and "id" not in item:
        item["id"] = item.pop("_id")
    return item


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream documents from a JSONL file (optionally .gz); BEIR's ``_id`` is read as ``id``."""
    return map(with_id, iter_jsonl(path))


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch
