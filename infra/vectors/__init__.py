"""Vector stores: the ``VectorStore`` protocol and its embedded (edge) and Qdrant-server backends.

The backends are imported on first use, so importing the protocol stays cheap
(``qdrant_client`` alone takes most of a second to import).
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
