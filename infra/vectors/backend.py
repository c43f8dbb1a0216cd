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

import numpy as np
import qdrant_edge as qe

from counterpoint.errors import InvalidInput, NotFound
from counterpoint.infra.vectors.base import (
    CollectionSpec,
    Retrieval,
    ScoredRecord,
    SearchMode,
    VectorRecord,
    point_id,
)
from counterpoint.infra.vectors.common import (
    ID_KEY,
    as_floats,
    check_dimensions,
    check_name,
    check_spec,
    record_payload,
    valid_name,
)
from counterpoint.infra.vectors.diversity import mmr_order
from counterpoint.infra.vectors.lexical import LEXICAL_VECTOR, document_vector, query_vector
from counterpoint.schemas import Filter

RETRIEVE_CHUNK = 1024
"""Point ids looked up per engine call by ``existing_ids``."""

Point = tuple[str, Sequence[float], qe.SparseVector | None, dict[str, Any]]
"""A point as both engines store it: point id, dense vector (in the form ``_stored_vector`` gives),
BM25 vector (lexical collections), payload (with the document id under ``id``)."""

RRF_K = 60
"""Reciprocal rank fusion's k: a hit's share is weight / (k + rank), the usual constant."""


def rrf_weights(lexical_weight: float) -> list[float]:
    """The dense and lexical stages' RRF weights: ``lexical_weight`` against 1 - it, scaled so that an
    even split is plain RRF (1, 1)."""
    return [2 * (1 - lexical_weight), 2 * lexical_weight]


def dense_of(vector: Any) -> list[float]:
    """The dense vector of a stored point, whether the engine gave it alone or by name (``""``)."""
    return list(vector[""] if isinstance(vector, dict) else vector)


def sparse_of(vector: Any) -> qe.SparseVector | None:
    """The BM25 vector of a stored point (as the embedded engine's type), if it has one."""
    if not isinstance(vector, dict) or vector.get(LEXICAL_VECTOR) is None:
        return None
    found = vector[LEXICAL_VECTOR]
    return (
        found
        if isinstance(found, qe.SparseVector)
        else qe.SparseVector(list(found.indices), list(found.values))
    )


def indexed_fields(spec: CollectionSpec) -> dict[str, str]:
    """Every payload index a collection gets: the spec's, and the document id as a keyword."""
    return {**spec.payload_indexes, ID_KEY: "keyword"}


def scored(pid: Any, score: float, payload: dict[str, Any] | None) -> ScoredRecord:
    """A stored point as a result: its document id (from the payload), score and payload."""
    payload = dict(payload or {})
    return ScoredRecord(id=str(payload.get(ID_KEY, pid)), score=float(score), payload=payload)


def with_stages(final: Iterable[Any], stages: dict[str, Iterable[Any]]) -> list[ScoredRecord]:
    """The final hits as records, each with its score in every stage whose candidates it was among."""
    by_stage = {stage: {str(p.id): float(p.score) for p in points} for stage, points in stages.items()}
    records = []
    for point in final:
        record = scored(point.id, point.score, point.payload)
        found = {
            stage: scores[str(point.id)] for stage, scores in by_stage.items() if str(point.id) in scores
        }
        records.append(ScoredRecord(record.id, record.score, record.payload, stages=found))
    return records


def _at_least_one(what: str, value: int) -> None:
    if value < 1:
        raise InvalidInput(f"{what} must be at least 1, got {value}")


def _fraction(what: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise InvalidInput(f"{what} must be between 0 and 1, got {value}")


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

    @staticmethod
    def _stored_vector(vector: Sequence[float]) -> Sequence[float]:
        """A dense vector to store, in the form the engine takes fastest: here a list of floats."""
        return as_floats(vector)

    @abstractmethod
    def _retrieve(self, name: str, point_ids: list[str]) -> Iterable[Any]:
        """The stored points among ``point_ids`` (objects with an ``id``)."""

    @abstractmethod
    def _nearest(
        self, name: str, vector: list[float], top_k: int, filter: Filter | None, mode: SearchMode | None
    ) -> Iterable[Any]:
        """The ``top_k`` best points, best first (objects with ``id``, ``score``, ``payload``)."""

    @abstractmethod
    def _retrieve_with(
        self,
        name: str,
        vector: list[float] | None,
        sparse: qe.SparseVector | None,
        top_k: int,
        filter: Filter | None,
        mode: SearchMode | None,
        retrieval: Retrieval,
    ) -> list[ScoredRecord]:
        """A lexical, hybrid or diversified search (``vector``/``sparse`` as ``retrieval.kind`` needs),
        best first; a hybrid one's records carry their ``dense`` and ``lexical`` stage scores."""

    @abstractmethod
    def _dense_vectors(self, name: str, point_ids: list[str]) -> list[list[float]]:
        """The dense vectors of stored points, in the order of ``point_ids``."""

    @abstractmethod
    def _sample(self, name: str, limit: int) -> list[list[float]]:
        """The vectors of the first ``limit`` points in point-id order."""

    @abstractmethod
    def index_status(self, name: str) -> dict[str, Any]:
        """``points``, ``segments``, ``indexed_vectors`` and ``state`` (``indexing`` or ``ready``)."""

    @abstractmethod
    def _page(
        self, name: str, limit: int, offset: str | None, vectors: bool | list[str]
    ) -> tuple[Iterable[Any], Any]:
        """A page of points (objects with ``id``, ``payload``, ``vector``: every vector with True, those
        named in a list, none with False) and the next page's offset."""

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
        """Store ``records``; in a lexical collection each gets its BM25 vector (the record's own, as a
        re-index carries it over, or computed from its payload's title and text)."""
        spec = self.spec(name)
        check_dimensions(name, spec.dimensions, [r.vector for r in records])
        if not records:
            return
        lexical = spec.lexical
        self._put(
            name,
            [
                (
                    point_id(r.id),
                    self._stored_vector(r.vector),
                    None if lexical is None else (r.sparse or document_vector(lexical, r.payload)),
                    record_payload(r),
                )
                for r in records
            ],
        )

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
        vector: Sequence[float] | None,
        top_k: int,
        filter: Filter | None = None,
        mode: SearchMode | None = None,
        retrieval: Retrieval | None = None,
    ) -> list[ScoredRecord]:
        """The ``top_k`` nearest points to ``vector``; ``mode`` makes the search exact or sets its
        ``hnsw_ef``. ``retrieval`` searches by BM25 (``lexical``), fuses both (``hybrid``) or
        diversifies the results (MMR): see :class:`~counterpoint.infra.vectors.base.Retrieval`."""
        _at_least_one("top_k", top_k)
        spec = self.spec(name)
        if vector is not None:
            check_dimensions(name, spec.dimensions, [vector])
        if retrieval is not None and retrieval.diversity is not None:
            return self._diversified(name, vector, top_k, filter, mode, retrieval)
        if retrieval is None or retrieval.kind == "dense":
            if vector is None:
                raise InvalidInput("a dense search needs a query vector")
            # Both engines return best first for every distance (euclid: smallest distance first).
            found = self._nearest(name, as_floats(vector), top_k, filter, mode)
            return [scored(p.id, p.score, p.payload) for p in found]
        return self._retrieve_with(
            name, *self._query_vectors(spec, vector, retrieval), top_k, filter, mode, retrieval
        )

    def _diversified(
        self,
        name: str,
        vector: Sequence[float] | None,
        top_k: int,
        filter: Filter | None,
        mode: SearchMode | None,
        retrieval: Retrieval,
    ) -> list[ScoredRecord]:
        """MMR over the mode's own ranking of ``candidates`` hits (see ``diversity.mmr_order``)."""
        assert retrieval.diversity is not None
        _fraction("diversity (MMR)", retrieval.diversity)
        _at_least_one("candidates", retrieval.candidates)
        pool = self.search(
            name, vector, max(retrieval.candidates, top_k), filter, mode, replace(retrieval, diversity=None)
        )
        if not pool:
            return pool
        vectors = self._dense_vectors(name, [point_id(r.id) for r in pool])
        order = mmr_order(
            [r.score for r in pool], np.asarray(vectors, dtype=np.float32), top_k, retrieval.diversity
        )
        return [pool[i] for i in order]

    @staticmethod
    def _query_vectors(
        spec: CollectionSpec, vector: Sequence[float] | None, retrieval: Retrieval
    ) -> tuple[list[float] | None, qe.SparseVector | None]:
        """The dense and sparse query vectors ``retrieval`` needs; ``InvalidInput`` for what it lacks."""
        _at_least_one("candidates", retrieval.candidates)
        _fraction("lexical_weight", retrieval.lexical_weight)
        if retrieval.kind == "hybrid" and vector is None:
            raise InvalidInput("a hybrid search needs a query vector")
        sparse = None
        if retrieval.kind != "dense":
            if spec.lexical is None:
                raise InvalidInput(
                    f"collection '{spec.name}' has no lexical (BM25) vectors, so it has no {retrieval.kind} "
                    "search: create it with lexical 'bm25', or re-index it with lexical 'bm25' to add them"
                )
            if not retrieval.text:
                raise InvalidInput(f"a {retrieval.kind} search needs the query text")
            sparse = query_vector(spec.lexical, retrieval.text)
        return (None if vector is None else as_floats(vector)), sparse

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
        self,
        name: str,
        limit: int = 256,
        offset: str | None = None,
        *,
        with_sparse: bool = False,
        with_vectors: bool = False,
    ) -> tuple[list[ScoredRecord], str | None]:
        _at_least_one("limit", limit)
        check_name(name)
        with_sparse = with_sparse and self.spec(name).lexical is not None
        vectors: bool | list[str] = True if with_vectors else [LEXICAL_VECTOR] if with_sparse else False
        points, after = self._page(name, limit, offset, vectors)
        points = list(points)
        records = [scored(p.id, 0.0, p.payload) for p in points]
        if with_sparse:
            records = [replace(r, sparse=sparse_of(p.vector)) for r, p in zip(records, points, strict=True)]
        if with_vectors:
            records = [replace(r, vector=dense_of(p.vector)) for r, p in zip(records, points, strict=True)]
        return records, None if after is None else str(after)

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Write a consistent copy of collection ``name`` into the empty directory ``dest``; its point count."""
        check_name(name)
        return self._export(name, Path(dest))

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from what ``export_snapshot`` wrote to ``source``."""
        check_spec(spec)
        self._import(spec, Path(source))
