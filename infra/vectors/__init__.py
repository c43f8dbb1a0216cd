"""Vector stores: the ``VectorStore`` protocol and its embedded (edge) and Qdrant-server backends.

The backends are imported on first use, so importing the protocol stays cheap
(``qdrant_client`` alone takes most of a second to import).

Modules: ``base`` (the protocols and records), ``common`` (name/spec/dimension checks),
``backend`` (``VectorStoreBackend``: the checks both backends run, on top of their engine calls),
``edge`` + ``edge_shard`` + ``edge_tuning`` (the embedded engine), ``qdrant`` (a Qdrant server),
``filters`` (our ``Filter`` in each engine's terms), ``factory`` (the configured backend).
May import the counterpoint base (errors, settings, schemas) and ``infra.sparse``; nothing above infra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from counterpoint.infra.vectors.base import CollectionSpec, ScoredRecord, VectorRecord, VectorStore, point_id
from counterpoint.infra.vectors.factory import make_vector_store

if TYPE_CHECKING:
    from counterpoint.infra.vectors.edge import EdgeTuning, EdgeVectorStore
    from counterpoint.infra.vectors.qdrant import QdrantVectorStore

_LAZY = {
    "EdgeTuning": "counterpoint.infra.vectors.edge",
    "EdgeVectorStore": "counterpoint.infra.vectors.edge",
    "QdrantVectorStore": "counterpoint.infra.vectors.qdrant",
}

__all__ = [
    "CollectionSpec",
    "EdgeTuning",
    "EdgeVectorStore",
    "QdrantVectorStore",
    "ScoredRecord",
    "VectorRecord",
    "VectorStore",
    "make_vector_store",
    "point_id",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
