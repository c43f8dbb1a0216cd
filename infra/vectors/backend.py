"""What both vector-store backends share: argument checks, point ids and payloads, results.

:class:`VectorStoreBackend` implements the :class:`~counterpoint.infra.vectors.base.VectorStore`
methods once (names, specs, dimensions, ``top_k``/``limit``, empty inputs, document ids) on top of
a few engine calls each backend provides (``_create``, ``_put``, ``_nearest``, ...), so the
embedded engine and a Qdrant server accept and reject the same input the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from counterpoint.errors import InvalidInput, NotFound
from counterpoint.infra.vectors.base import CollectionSpec, ScoredRecord, SearchMode, VectorRecord, point_id
from counterpoint.infra.vectors.common import (
    ID_KEY,
    as_floats,
    check_dimensions,
    check_name,
    check_spec,
    record_payload,
    valid_name,
)
from counterpoint.schemas import Filter

RETRIEVE_CHUNK = 1024
"""Point ids looked up per engine call by ``existing_ids``."""

Point = tuple[str, list[float], dict[str, Any]]
"""A point as both engines store it: point id, vector, payload (with the document id under ``id``)."""


def indexed_fields(spec: CollectionSpec) -> dict[str, str]:
    """Every payload index a collection gets: the spec's, and the document id as a keyword."""
    return {**spec.payload_indexes, ID_KEY: "keyword"}


def scored(pid: Any, score: float, payload: dict[str, Any] | None) -> ScoredRecord:
    """A stored point as a result: its document id (from the payload), score and payload."""
    payload = dict(payload or {})
    return ScoredRecord(id=str(payload.get(ID_KEY, pid)), score=float(score), payload=payload)


def _at_least_one(what: str, value: int) -> None:
    if value < 1:
        raise InvalidInput(f"{what} must be at least 1, got {value}")


class VectorStoreBackend(ABC):
    """The checked half of a ``VectorStore``; subclasses supply the engine calls."""

    snapshot_format: str

    # --- what a backend implements ---------------------------------------------------------

    @abstractmethod
    def spec(self, name: str) -> CollectionSpec:
        """The collection's spec (``NotFound`` if it does not exist)."""

    @abstractmethod
    def _exists(self, name: str) -> bool: ...

    @abstractmethod
    def _create(self, spec: CollectionSpec) -> None: ...

    @abstractmethod
    def _delete(self, name: str) -> None: ...

    @abstractmethod
    def _count(self, name: str, exact: bool) -> int: ...

    @abstractmethod
    def _put(self, name: str, points: list[Point]) -> None: ...

    @abstractmethod
    def _retrieve(self, name: str, point_ids: list[str]) -> Iterable[Any]:
        """The stored points among ``point_ids`` (objects with an ``id``)."""

    @abstractmethod
    def _nearest(
        self, name: str, vector: list[float], top_k: int, filter: Filter | None, mode: SearchMode | None
    ) -> Iterable[Any]:
        """The ``top_k`` best points, best first (objects with ``id``, ``score``, ``payload``)."""

    @abstractmethod
    def _sample(self, name: str, limit: int) -> list[list[float]]:
        """The vectors of the first ``limit`` points in point-id order."""

    @abstractmethod
    def index_status(self, name: str) -> dict[str, Any]:
        """``points``, ``segments``, ``indexed_vectors`` and ``state`` (``indexing`` or ``ready``)."""

    @abstractmethod
    def _page(self, name: str, limit: int, offset: str | None) -> tuple[Iterable[Any], Any]:
        """A page of points (objects with ``id``, ``payload``) and the next page's offset."""

    @abstractmethod
    def _set_spec(self, spec: CollectionSpec) -> None:
        """Store the changed spec of an existing collection; its searches use it from now on."""

    @abstractmethod
    def _export(self, name: str, dest: Path) -> int: ...

    @abstractmethod
    def _import(self, spec: CollectionSpec, source: Path) -> None: ...

    # --- the VectorStore methods -------------------------------------------------------------

    def create_collection(self, spec: CollectionSpec) -> None:
        check_spec(spec)
        self._create(spec)

    def delete_collection(self, name: str) -> None:
        check_name(name)
        self._delete(name)

    def collection_exists(self, name: str) -> bool:
        return valid_name(name) and self._exists(name)

    def _require(self, name: str) -> None:
        if not self.collection_exists(name):
            raise NotFound(f"collection '{name}' does not exist")

    def count(self, name: str, *, exact: bool = True) -> int:
        check_name(name)
        return self._count(name, exact)

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None:
        check_dimensions(name, self.spec(name).dimensions, [r.vector for r in records])
        if records:
            self._put(name, [(point_id(r.id), as_floats(r.vector), record_payload(r)) for r in records])

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]:
        check_name(name)
        wanted = {point_id(i): i for i in ids}
        keys = list(wanted)
        if not keys:
            self._require(name)
        found: set[str] = set()
        for start in range(0, len(keys), RETRIEVE_CHUNK):
            points = self._retrieve(name, keys[start : start + RETRIEVE_CHUNK])
            found.update(wanted[str(point.id)] for point in points)
        return found

    def search(
        self,
        name: str,
        vector: Sequence[float],
        top_k: int,
        filter: Filter | None = None,
        mode: SearchMode | None = None,
    ) -> list[ScoredRecord]:
        """The ``top_k`` nearest points; ``mode`` makes the search exact or sets its ``hnsw_ef``."""
        _at_least_one("top_k", top_k)
        check_dimensions(name, self.spec(name).dimensions, [vector])
        # Both engines return best first for every distance (euclid: smallest distance first).
        found = self._nearest(name, as_floats(vector), top_k, filter, mode)
        return [scored(p.id, p.score, p.payload) for p in found]

    def set_search(
        self, name: str, *, hnsw_ef: int | None = None, oversampling: float | None = None
    ) -> CollectionSpec:
        """Change how collection ``name`` is searched: ``hnsw_ef`` (candidates a graph search explores,
        e.g. what ``check-recall`` suggests) and ``oversampling`` (int8 candidates rescored per result).
        Only search-time settings: the graph and the int8 copy stay as built. Unset ones are kept."""
        check_name(name)
        if hnsw_ef is not None:
            _at_least_one("hnsw_ef", hnsw_ef)
        if oversampling is not None and not oversampling >= 1:
            raise InvalidInput(f"oversampling must be at least 1, got {oversampling}")
        spec = self.spec(name)
        changes = {k: v for k, v in (("hnsw_ef", hnsw_ef), ("oversampling", oversampling)) if v is not None}
        spec = replace(spec, index=replace(spec.index, **changes))
        self._set_spec(spec)
        return spec

    def sample_vectors(self, name: str, limit: int) -> list[list[float]]:
        """Up to ``limit`` stored vectors. Point ids hash the document ids, so their order is a fair sample."""
        _at_least_one("limit", limit)
        check_name(name)
        return self._sample(name, limit)

    def scroll(
        self, name: str, limit: int = 256, offset: str | None = None
    ) -> tuple[list[ScoredRecord], str | None]:
        _at_least_one("limit", limit)
        check_name(name)
        points, after = self._page(name, limit, offset)
        return [scored(p.id, 0.0, p.payload) for p in points], None if after is None else str(after)

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Write a consistent copy of collection ``name`` into the empty directory ``dest``; its point count."""
        check_name(name)
        return self._export(name, Path(dest))

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from what ``export_snapshot`` wrote to ``source``."""
        check_spec(spec)
        self._import(spec, Path(source))
