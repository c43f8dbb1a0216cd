"""Parquet files of precomputed vectors, read record batch by record batch with pyarrow.

Columns: ``id`` (string or integer), ``vector`` (a list of numbers, fixed-size or not), optional
``text`` and ``title`` (strings) and ``metadata`` (a struct, or a JSON object as a string); any
other column of numbers, strings, booleans or lists of them goes into each point's metadata under
its name. The schema is checked when the file is opened; a corrupt or truncated file is an
`InvalidInput` naming the rows read before it. pyarrow is imported here only, so the rest of the SDK
works without it. Imports the counterpoint base and `client.vector_files`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from counterpoint.client.vector_files import VectorBatch, VectorFile, point_id, point_payload
from counterpoint.errors import InvalidInput

OWN = ("id", "vector", "text", "title", "metadata")


@dataclass(frozen=True)
class Columns:
    """What a file's schema holds besides ``id`` and ``vector``."""

    text: bool
    title: bool
    metadata: str | None  # "struct", "json" or None
    extras: tuple[str, ...]


def _is_scalar(kind: Any) -> bool:
    import pyarrow as pa

    t = pa.types
    return bool(
        t.is_integer(kind)
        or t.is_floating(kind)
        or t.is_boolean(kind)
        or t.is_string(kind)
        or t.is_large_string(kind)
    )


def _is_list(kind: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))


def parquet_columns(schema: Any, path: str) -> Columns:
    """Check a file's schema; `InvalidInput` naming the first column that does not fit."""
    import pyarrow as pa

    t = pa.types
    names = set(schema.names)
    missing = [name for name in ("id", "vector") if name not in names]
    if missing:
        raise InvalidInput(f"{path}: no column {missing} (columns: {', '.join(schema.names)})")

    def kind(name: str) -> Any:
        return schema.field(name).type

    def refuse(name: str, wanted: str) -> InvalidInput:
        return InvalidInput(f"{path}: column '{name}' has type {kind(name)}; expected {wanted}")

    if not (t.is_string(kind("id")) or t.is_large_string(kind("id")) or t.is_integer(kind("id"))):
        raise refuse("id", "strings or integers")
    vector = kind("vector")
    if not _is_list(vector) or not (t.is_floating(vector.value_type) or t.is_integer(vector.value_type)):
        raise refuse("vector", "a list of numbers")
    for name in ("text", "title"):
        if name in names and not (t.is_string(kind(name)) or t.is_large_string(kind(name))):
            raise refuse(name, "strings")
    metadata = None
    if "metadata" in names:
        if t.is_struct(kind("metadata")):
            metadata = "struct"
        elif t.is_string(kind("metadata")) or t.is_large_string(kind("metadata")):
            metadata = "json"
        else:
            raise refuse("metadata", "a struct or JSON strings")
    extras = tuple(name for name in schema.names if name not in OWN)
    for name in extras:
        value = kind(name)
        if not (_is_scalar(value) or (_is_list(value) and _is_scalar(value.value_type))):
            raise refuse(name, "numbers, strings, booleans or lists of them (it would go into the metadata)")
    return Columns("text" in names, "title" in names, metadata, extras)


def _vectors(column: Any, dims: int, where: Callable[[int], str]) -> np.ndarray:
    """A list column as an ``(n, dims)`` float32 matrix; `InvalidInput` for a null or a wrong length."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InvalidInput(f"{where(row)}: 'vector' is null")
    lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != dims)
    if wrong.size:
        row = int(wrong[0])
        raise InvalidInput(f"{where(row)}: vector has {lengths[row]} dimensions; the collection has {dims}")
    values = column.flatten().to_numpy(zero_copy_only=False)  # a null number becomes NaN: refused later
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float32).reshape(len(column), dims)


def _json_object(text: str | None, where: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{where}: 'metadata' is not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: 'metadata' must be a JSON object")
    return value


def batch_points(
    batch: Any, columns: Columns, done: int, dims: int, label: Callable[[int], str]
) -> VectorBatch:
    """The points of one record batch; ``done`` rows came before it (row numbers count from 1)."""
    n = batch.num_rows

    def where(i: int) -> str:
        return label(done + i + 1)

    def values(name: str) -> list[Any]:
        return batch.column(name).to_pylist()

    ids = [point_id(value, where(i)) for i, value in enumerate(values("id"))]
    vectors = _vectors(batch.column("vector"), dims, where)
    texts = values("text") if columns.text else [None] * n
    titles = values("title") if columns.title else [None] * n
    metas: list[Any] = values("metadata") if columns.metadata else [None] * n
    extras = {name: values(name) for name in columns.extras}
    payloads = []
    for i in range(n):
        meta = metas[i]
        if columns.metadata == "json":
            meta = _json_object(meta, where(i))
        meta = {k: v for k, v in (meta or {}).items() if v is not None}
        for name, column in extras.items():
            if column[i] is not None:
                meta[name] = column[i]
        payloads.append(point_payload(texts[i], titles[i], meta, where(i)))
    return VectorBatch(ids, vectors, payloads, list(range(done + 1, done + n + 1)))


class ParquetVectors(VectorFile):
    """A Parquet file of vectors; its schema is checked on opening."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        reader = self._open()
        try:
            self.columns = parquet_columns(reader.schema_arrow, str(path))
        finally:
            reader.close()

    def _open(self) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowException, OSError) as exc:
            raise InvalidInput(f"{self.path} is not a readable Parquet file ({exc})") from None

    def batches(self, size: int, dims: int) -> Iterator[VectorBatch]:
        import pyarrow as pa

        done = 0
        reader = self._open()
        try:
            stream = reader.iter_batches(batch_size=size)
            while True:
                try:
                    batch = next(stream, None)
                except (pa.ArrowException, OSError) as exc:
                    raise InvalidInput(
                        f"{self.path} is corrupt or truncated after row {done} ({exc})"
                    ) from None
                if batch is None:
                    return
                yield batch_points(batch, self.columns, done, dims, self.label)
                done += batch.num_rows
        finally:
            reader.close()
