"""Checks and conversions both vector-store backends share, so they fail the same way."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, get_args

from counterpoint.errors import InvalidInput
from counterpoint.infra.vectors.base import Bm25Settings, CollectionSpec, IndexSettings, VectorRecord
from counterpoint.schemas import INDEX_BOUNDS, PAYLOAD_FIELD, Distance, FieldType, VectorDatatype

DISTANCES: frozenset[str] = frozenset(get_args(Distance))
FIELD_TYPES: frozenset[str] = frozenset(get_args(FieldType))
DATATYPES: frozenset[str] = frozenset(get_args(VectorDatatype))
ID_KEY = "id"
# Physical collection names (the registry may derive longer ones than the API's 63 characters
# when it re-indexes); they become directory names, hence no separators and no leading dot.
PHYSICAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def valid_name(name: object) -> bool:
    return isinstance(name, str) and bool(PHYSICAL_NAME.match(name))


def check_name(name: str) -> None:
    """Reject names that are not valid collection names (they also become directory names)."""
    if not valid_name(name):
        raise InvalidInput(f"invalid collection name {name!r}")


def check_spec(spec: CollectionSpec) -> None:
    """Validate a spec before any backend state is created."""
    check_name(spec.name)
    if isinstance(spec.dimensions, bool) or not isinstance(spec.dimensions, int) or spec.dimensions < 1:
        raise InvalidInput(f"dimensions must be a positive integer, got {spec.dimensions!r}")
    if spec.distance not in DISTANCES:
        raise InvalidInput(f"unknown distance {spec.distance!r}; expected one of {sorted(DISTANCES)}")
    bad = {k: v for k, v in spec.payload_indexes.items() if v not in FIELD_TYPES}
    if bad:
        raise InvalidInput(f"unknown payload index types {bad}; expected one of {sorted(FIELD_TYPES)}")
    names = [k for k in spec.payload_indexes if not isinstance(k, str) or not PAYLOAD_FIELD.match(k)]
    if names:
        raise InvalidInput(f"invalid payload index names {names}: use 1-64 ASCII letters, digits, '_' or '-'")
    check_index(spec.index)
    if spec.lexical is not None:
        check_bm25(spec.lexical)


def check_bm25(bm25: Bm25Settings) -> None:
    """``InvalidInput`` for BM25 settings the engine's model refuses."""
    if not 0 <= bm25.b <= 1:
        raise InvalidInput(f"bm25 b must be between 0 and 1, got {bm25.b}")
    if not bm25.k >= 0:
        raise InvalidInput(f"bm25 k must not be negative, got {bm25.k}")
    if not bm25.avg_len > 0:
        raise InvalidInput(f"bm25 avg_len must be positive, got {bm25.avg_len}")


def check_index(index: IndexSettings) -> None:
    """``InvalidInput`` for index settings out of range (a collection would be built with them)."""
    for key, (low, high) in INDEX_BOUNDS.items():
        value = getattr(index, key)
        if value is not None and not low <= value <= high:
            raise InvalidInput(f"index setting {key}={value} is out of range [{low}, {high}]")
    if index.datatype is not None and index.datatype not in DATATYPES:
        raise InvalidInput(f"unknown vector datatype {index.datatype!r}; expected one of {sorted(DATATYPES)}")


def check_dimensions(name: str, expected: int, vectors: Sequence[Sequence[float]]) -> None:
    """Raise ``InvalidInput`` naming expected and got dimensions for the first wrong vector."""
    for i, vector in enumerate(vectors):
        got = len(vector)
        if got != expected:
            where = "" if len(vectors) == 1 else f" (item {i})"
            raise InvalidInput(
                f"vector dimension mismatch for collection '{name}'{where}: expected {expected}, got {got}"
            )


def as_floats(vector: Sequence[float]) -> list[float]:
    """A plain Python list (numpy arrays included), the form both engines take fastest."""
    tolist = getattr(vector, "tolist", None)
    return tolist() if callable(tolist) else list(vector)


def record_payload(record: VectorRecord) -> dict[str, Any]:
    """The stored payload: the record's payload with the original document id under ``id``."""
    return {**record.payload, ID_KEY: record.id}


def spec_to_dict(spec: CollectionSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "dimensions": spec.dimensions,
        "distance": spec.distance,
        "payload_indexes": dict(spec.payload_indexes),
        "index": {k: v for k, v in asdict(spec.index).items() if v is not None},
        "lexical": None if spec.lexical is None else asdict(spec.lexical),
    }


def spec_from_dict(data: dict[str, Any]) -> CollectionSpec:
    return CollectionSpec(
        name=str(data["name"]),
        dimensions=int(data["dimensions"]),
        distance=data["distance"],
        payload_indexes=dict(data.get("payload_indexes") or {}),
        index=IndexSettings(**(data.get("index") or {})),
        lexical=None if data.get("lexical") is None else Bm25Settings(**data["lexical"]),
    )
