"""The vector-store protocol: the one interface the gateway uses, with two backends.

Backends store *physical* collections; the registry database maps a user-facing collection
name (and later, an alias) onto one. Document ids are arbitrary strings: backends map them
to Qdrant point ids with ``point_id`` and keep the original in the payload under ``id``.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from counterpoint.schemas import Distance, FieldType, Filter, VectorDatatype

if TYPE_CHECKING:
    import qdrant_edge as qe

_NAMESPACE = uuid.UUID("6f1f6a52-4c1e-4a59-9b7c-2f0d3f4e5a61")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def point_id(doc_id: str) -> str:
    """Stable Qdrant point id for a document id: ``str(uuid.uuid5(_NAMESPACE, doc_id))``, computed
    without building a ``UUID`` object (3x faster; a bulk upload of a million vectors calls it a million times)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + doc_id.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class IndexSettings:
    """A collection's own HNSW and storage knobs, fixed at creation; None: the store's default.

    ``m`` (graph links per node) and ``ef_construct`` shape the graph; ``hnsw_ef`` is how many
    candidates a search explores (more: better recall, slower). ``quantization`` keeps an int8 copy
    of the vectors in RAM and rescores the best ``oversampling`` x top_k with the full vectors;
    ``on_disk`` leaves the full vectors on disk (memory-mapped) instead of in RAM (unset, the
    embedded engine does so whenever quantization is on and they are float32; see ``EdgeTuning``).
    ``datatype`` ``"float16"`` stores the full vectors at half the size (read back rounded).
    """

    m: int | None = None
    ef_construct: int | None = None
    hnsw_ef: int | None = None
    quantization: bool | None = None
    oversampling: float | None = None
    on_disk: bool | None = None
    datatype: VectorDatatype | None = None


@dataclass(frozen=True)
class SearchMode:
    """How one search runs: ``exact`` scans every point; ``hnsw_ef`` overrides the collection's."""

    exact: bool = False
    hnsw_ef: int | None = None


@dataclass(frozen=True)
class Bm25Settings:
    """A collection's BM25 sparse vectors (the engine's own ``Bm25`` model, English tokenizer,
    stop words and Snowball stemmer), fixed at creation so every document is weighted alike.

    ``k`` saturates term frequency, ``b`` normalises by length against ``avg_len`` (tokens): a fixed
    average rather than the corpus's, so adding documents never re-weights the stored ones; the
    engine applies IDF itself at search time (sparse vectors with the IDF modifier).
    """

    k: float = 1.2
    b: float = 0.75
    avg_len: float = 256.0


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dimensions: int
    distance: Distance = "cosine"
    payload_indexes: dict[str, FieldType] = field(default_factory=dict)
    index: IndexSettings = field(default_factory=IndexSettings)
    lexical: Bm25Settings | None = None  # BM25 sparse vectors beside the dense ones; None: dense only


SearchKind = Literal["dense", "lexical", "hybrid"]
FusionKind = Literal["rrf", "dbsf"]


@dataclass(frozen=True)
class Retrieval:
    """What a search retrieves with, beyond the dense vector (the default: dense only).

    ``lexical`` ranks by BM25 over ``text``; ``hybrid`` fetches ``candidates`` of each and fuses
    them in the engine: ``dbsf`` (scores normalised by their distribution; the better on SciFact
    dev) or ``rrf`` (reciprocal ranks, ``lexical_weight`` against 1 - it). ``diversity`` (0-1)
    reorders the mode's first ``candidates`` hits by maximal marginal relevance (relevance: the mode's
    score; redundancy: the dense vectors, ``diversity.py``): 0 keeps the mode's order.
    """

    kind: SearchKind = "dense"
    text: str | None = None
    fusion: FusionKind = "dbsf"
    lexical_weight: float = 0.5
    candidates: int = 100
    diversity: float | None = None


@dataclass(frozen=True)
class VectorRecord:
    id: str
    vector: Sequence[float]
    payload: dict[str, Any]
    sparse: qe.SparseVector | None = None  # its BM25 vector; None: computed from the payload's text


@dataclass(frozen=True)
class ScoredRecord:
    id: str
    score: float
    payload: dict[str, Any]
    stages: dict[str, float] = field(default_factory=dict)  # a hybrid search's dense and lexical scores
    sparse: qe.SparseVector | None = None  # filled by ``scroll(with_sparse=True)``
    vector: list[float] | None = None  # the dense vector, filled by ``scroll(with_vectors=True)``


@runtime_checkable
class VectorStore(Protocol):
    """What Counterpoint needs from a vector database."""

    def create_collection(self, spec: CollectionSpec) -> None: ...

    def spec(self, name: str) -> CollectionSpec:
        """The spec the collection was created with (``NotFound`` if it does not exist)."""
        ...

    def delete_collection(self, name: str) -> None: ...

    def collection_exists(self, name: str) -> bool: ...

    def count(self, name: str, *, exact: bool = True) -> int:
        """Points in ``name``. ``exact=False``: the engine's estimate from its segments, O(segments)
        instead of a pass over the points (the embedded engine's equals the exact count after
        upserts, overwrites and builds; a Qdrant server's may run over while it optimizes)."""
        ...

    def upsert(self, name: str, records: Sequence[VectorRecord]) -> None: ...

    def existing_ids(self, name: str, ids: Sequence[str]) -> set[str]: ...

    def search(
        self,
        name: str,
        vector: Sequence[float] | None,
        top_k: int,
        filter: Filter | None = None,
        mode: SearchMode | None = None,
        retrieval: Retrieval | None = None,
    ) -> list[ScoredRecord]:
        """The ``top_k`` best points for ``vector`` (dense), or as ``retrieval`` says (lexical, hybrid, MMR)."""
        ...

    def set_search(
        self, name: str, *, hnsw_ef: int | None = None, oversampling: float | None = None
    ) -> CollectionSpec:
        """Change the collection's search-time settings in place (the graph stays); its new spec."""
        ...

    def index_status(self, name: str) -> dict[str, Any]:
        """``points``, ``indexed_vectors`` (in an HNSW graph), ``segments`` and ``state``:
        ``indexing`` while a graph is being built or is due, else ``ready``."""
        ...

    def sample_vectors(self, name: str, limit: int) -> list[list[float]]:
        """Up to ``limit`` stored vectors (in point-id order: a hash of the document id, so a fair sample)."""
        ...

    def scroll(
        self,
        name: str,
        limit: int = 256,
        offset: str | None = None,
        *,
        with_sparse: bool = False,
        with_vectors: bool = False,
    ) -> tuple[list[ScoredRecord], str | None]:
        """A page of stored points (payloads, score 0; their BM25 vectors ``with_sparse``, dense ones
        ``with_vectors``) and the offset of the next page (None: done).

        Re-indexing reads a collection this way; the order is the engine's, stable across pages.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Snapshots(Protocol):
    """Backends that copy a collection out to files and back in (backups, ``services/gateway/backups.py``).

    ``snapshot_format`` names what ``export_snapshot`` writes (``edge-shard``: the embedded engine's
    shard directory; ``qdrant-snapshot``: a Qdrant server's native snapshot file); ``import_snapshot``
    reads the same format back into a new collection.
    """

    snapshot_format: str

    def export_snapshot(self, name: str, dest: Path) -> int:
        """Write a consistent copy of collection ``name`` into the empty directory ``dest``; its point count."""
        ...

    def import_snapshot(self, spec: CollectionSpec, source: Path) -> None:
        """Create collection ``spec.name`` from what ``export_snapshot`` wrote to ``source`` (may move it)."""
        ...
