"""Files of precomputed vectors, read in batches without loading them whole: JSONL, ``.npy`` + JSONL, Parquet.

- JSONL (``.jsonl``, ``.jsonl.gz``, any other name): one object per line, ``id`` (or BEIR's ``_id``),
  ``vector`` (list of numbers), optional ``text``, ``title``, ``metadata`` (object).
- ``.npy``: a 2-D float array, memory-mapped; its ids and payloads come from a JSONL file whose line i
  holds row i's ``id`` and optional ``text``/``title``/``metadata``.
- ``.parquet``: columns ``id``, ``vector`` (list of numbers), optional ``text``, ``title``, ``metadata``
  (struct or JSON string); any other column goes into the metadata.

`check_vector_file` reads a file once and raises `InvalidInput` naming the line or row of the first
problem (bad JSON, wrong dimensions, NaN/inf, a repeated id, metadata that does not fit the collection,
a truncated ``.npy``, a corrupt Parquet file), so the SDK uploads nothing from a bad file. Imports the
counterpoint base only; Parquet is read by `parquet_vectors` (pyarrow, imported lazily).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from counterpoint.errors import InvalidInput
from counterpoint.jsonl import iter_jsonl
from counterpoint.schemas import RESERVED_PAYLOAD_KEYS, FieldType, metadata_mismatch
from counterpoint.textfiles import open_text

FIELDS = frozenset({"id", "_id", "vector", "text", "title", "metadata"})
PAYLOAD_FIELDS = FIELDS - {"vector"}  # a .npy file's payload lines


@dataclass
class VectorBatch:
    """Consecutive points of a file: ids, an ``(n, dims)`` float32 matrix and payloads, with their places."""

    ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]]  # {text?, title?, metadata?}; {} for a bare vector
    where: list[int]  # each point's line (JSONL) or row (npy, Parquet) number, from 1


class _Lines:
    """A text file's lines, remembering the number of the last one handed out (for error messages)."""

    def __init__(self, path: Path) -> None:
        self.path, self.number = path, 0

    def __iter__(self) -> Iterator[str]:
        with open_text(self.path) as handle:
            for line in handle:
                self.number += 1
                yield line


def point_id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"{where}: 'id' must be a string or an integer, got {value!r}")
    if not str(value).strip():
        raise InvalidInput(f"{where}: 'id' must not be empty")
    return str(value)


def point_payload(text: Any, title: Any, metadata: Any, where: str) -> dict[str, Any]:
    """The ``{text?, title?, metadata?}`` of a point, its types checked."""
    payload: dict[str, Any] = {}
    for key, value in (("text", text), ("title", title)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(f"{where}: '{key}' must be a string, got {type(value).__name__}")
            payload[key] = value
    if metadata is not None and metadata != {}:
        if not isinstance(metadata, dict):
            raise InvalidInput(f"{where}: 'metadata' must be an object, got {type(metadata).__name__}")
        clash = RESERVED_PAYLOAD_KEYS & metadata.keys()
        if clash:
            raise InvalidInput(f"{where}: metadata may not use reserved keys {sorted(clash)}")
        payload["metadata"] = metadata
    return payload


def _id_and_payload(
    item: dict[str, Any], label: Callable[[], str], allowed: frozenset[str]
) -> tuple[str, dict[str, Any]]:
    """A line's id and payload; the common cases (a string id; an id alone) skip the full checks, and
    the error label is built only for an error (formatting it for every line would cost as much)."""
    value = item.get("id", item.get("_id"))
    point = value if type(value) is str and value.strip() else point_id(value, label())
    if len(item) == 1 or (len(item) == 2 and "vector" in item):
        return point, {}
    if not item.keys() <= allowed:
        unknown = sorted(item.keys() - allowed)
        expected = ", ".join(sorted(allowed - {"_id"}))
        raise InvalidInput(f"{label()}: unknown field(s) {unknown} (expected {expected})")
    return point, point_payload(item.get("text"), item.get("title"), item.get("metadata"), label())


def _matrix(rows: list[Any], where: list[str]) -> np.ndarray:
    """Rows of numbers as float32 (a number beyond float32 becomes inf, refused by the checks)."""
    with np.errstate(over="ignore"):
        try:
            return np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            for row, label in zip(rows, where, strict=True):
                try:
                    np.asarray(row, dtype=np.float32)
                except (TypeError, ValueError):
                    raise InvalidInput(f"{label}: 'vector' must hold numbers only") from None
            raise


class VectorFile:
    """A file of vectors; `batches` may be called again for a second pass."""

    unit = "row"

    def __init__(self, path: Path) -> None:
        self.path = path

    def label(self, where: int) -> str:
        return f"{self.path}: {self.unit} {where}"

    def batches(self, size: int, dims: int) -> Iterator[VectorBatch]:
        raise NotImplementedError


class JsonlVectors(VectorFile):
    unit = "line"

    def batches(self, size: int, dims: int) -> Iterator[VectorBatch]:
        lines = _Lines(self.path)
        ids: list[str] = []
        rows: list[Any] = []
        payloads: list[dict[str, Any]] = []
        where: list[int] = []

        def label() -> str:
            return self.label(lines.number)

        for item in iter_jsonl(lines, str(self.path)):
            point, payload = _id_and_payload(item, label, FIELDS)
            vector = item.get("vector")
            if not isinstance(vector, list):
                raise InvalidInput(f"{label()}: 'vector' must be a list of numbers")
            if len(vector) != dims:
                raise InvalidInput(
                    f"{label()}: vector has {len(vector)} dimensions; the collection has {dims}"
                )
            ids.append(point)
            rows.append(vector)
            payloads.append(payload)
            where.append(lines.number)
            if len(ids) == size:
                yield VectorBatch(ids, _matrix(rows, [self.label(w) for w in where]), payloads, where)
                ids, rows, payloads, where = [], [], [], []
        if ids:
            yield VectorBatch(ids, _matrix(rows, [self.label(w) for w in where]), payloads, where)


def open_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file's 2-D float array, memory-mapped; `InvalidInput` for a truncated or unusable one."""
    fmt = np.lib.format
    with open(path, "rb") as handle:
        try:
            version = fmt.read_magic(handle)
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(handle)
        except (ValueError, EOFError, OSError) as exc:
            raise InvalidInput(f"{path} is not a readable .npy file ({exc})") from None
        offset = handle.tell()
    if len(shape) != 2 or dtype.kind != "f":
        raise InvalidInput(
            f"{path} holds a {dtype} array of shape {shape}; expected a 2-D float array (rows, dims)"
        )
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        rows = max(0, size - offset) // max(1, shape[1] * dtype.itemsize)
        raise InvalidInput(
            f"{path} is truncated: its header says {shape[0]} x {shape[1]} {dtype}, {expected} bytes, "
            f"but the file has {size} bytes (about {rows} whole rows)"
        )
    return np.load(path, mmap_mode="r")


class NpyVectors(VectorFile):
    """A memory-mapped ``.npy`` matrix; row i's id and payload are line i of the ``payloads`` JSONL file."""

    def __init__(self, path: Path, payloads: Path | None) -> None:
        super().__init__(path)
        if payloads is None:
            raise InvalidInput(
                f"{path}: a .npy file needs a payloads JSONL file (line i: row i's id and optional text, "
                "title, metadata)"
            )
        if not payloads.is_file():
            raise InvalidInput(f"no such payloads file: {payloads}")
        self.payloads = payloads
        self.matrix = open_npy(path)

    def batches(self, size: int, dims: int) -> Iterator[VectorBatch]:
        total, width = self.matrix.shape
        if width != dims:
            raise InvalidInput(f"{self.path}: vectors have {width} dimensions; the collection has {dims}")
        lines = _Lines(self.payloads)
        items = iter_jsonl(lines, str(self.payloads))
        for start in range(0, total, size):
            chunk = np.asarray(self.matrix[start : start + size], dtype=np.float32)
            ids, payloads = [], []
            for row, item in enumerate(itertools.islice(items, len(chunk)), start=start):
                point, payload = _id_and_payload(
                    item,
                    lambda row=row: f"{self.payloads}: line {lines.number} (row {row + 1})",
                    PAYLOAD_FIELDS,
                )
                ids.append(point)
                payloads.append(payload)
            if len(ids) < len(chunk):
                raise InvalidInput(
                    f"{self.payloads} has {start + len(ids)} lines for the {total} rows of {self.path}: "
                    "one line per row"
                )
            yield VectorBatch(ids, chunk, payloads, list(range(start + 1, start + len(chunk) + 1)))
        extra = sum(1 for _ in items)
        if extra:
            raise InvalidInput(
                f"{self.payloads} has {total + extra} lines for the {total} rows of {self.path}: one line per row"
            )


def open_vector_file(path: str | Path, payloads: str | Path | None = None) -> VectorFile:
    """The reader for ``path`` by its suffix: ``.npy`` (ids from ``payloads``), ``.parquet``, else JSONL."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyVectors(path, Path(payloads) if payloads is not None else None)
    if payloads is not None:
        raise InvalidInput(f"a payloads file goes with a .npy file only; {path.name} carries its own ids")
    if suffix in (".parquet", ".pq"):
        from counterpoint.client.parquet_vectors import ParquetVectors

        return ParquetVectors(path)
    return JsonlVectors(path)


def check_batch(
    file: VectorFile, batch: VectorBatch, seen: set[str], indexes: Mapping[str, FieldType]
) -> None:
    """`InvalidInput` for a NaN/inf vector, an id seen before (``seen`` collects them) or bad metadata."""
    finite = np.isfinite(batch.vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise InvalidInput(
            f"{file.label(batch.where[row])}: vector '{batch.ids[row]}' contains NaN or infinity"
        )
    ids = batch.ids
    if len(set(ids)) != len(ids) or not seen.isdisjoint(ids):  # a repeat: name the first, in file order
        local: set[str] = set()
        for point, where in zip(ids, batch.where, strict=True):
            if point in seen or point in local:
                raise InvalidInput(f"{file.label(where)}: id '{point}' appears more than once in the file")
            local.add(point)
    seen.update(ids)
    if indexes:
        for payload, where in zip(batch.payloads, batch.where, strict=True):
            problem = metadata_mismatch(payload.get("metadata", {}), indexes)
            if problem is not None:
                raise InvalidInput(f"{file.label(where)}: {problem}")


def check_vector_file(file: VectorFile, dims: int, indexes: Mapping[str, FieldType], size: int = 4096) -> int:
    """Read ``file`` once and raise `InvalidInput` at its first problem; the number of points it holds."""
    seen: set[str] = set()
    rows = 0
    for batch in file.batches(size, dims):
        check_batch(file, batch, seen, indexes)
        rows += len(batch.ids)
    if rows == 0:
        raise InvalidInput(f"{file.path} holds no vectors")
    return rows
