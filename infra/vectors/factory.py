"""Build the configured vector store from settings: the one place that picks a backend."""

from __future__ import annotations

from counterpoint.infra.vectors.base import VectorStore
from counterpoint.settings import Settings


def make_vector_store(settings: Settings) -> VectorStore:
    """``edge``: embedded engine under ``settings.vectors_dir``, building graphs in the background;
    ``qdrant``: a Qdrant server."""
    if settings.vector_backend == "edge":
        from counterpoint.infra.vectors.edge import EdgeVectorStore, IndexPolicy

        policy = IndexPolicy(
            min_points=settings.index_build_min_points,
            idle_s=settings.index_build_idle_s,
            max_wait_s=settings.index_build_max_wait_s,
        )
        return EdgeVectorStore(settings.vectors_dir, auto_index=policy)
    if settings.vector_backend == "qdrant":
        from qdrant_client import QdrantClient

        from counterpoint.infra.vectors.qdrant import QdrantVectorStore

        if not settings.qdrant_url:
            raise ValueError("vector_backend 'qdrant' needs COUNTERPOINT_QDRANT_URL")
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        client = QdrantClient(url=settings.qdrant_url, api_key=api_key)
        return QdrantVectorStore(client, url=settings.qdrant_url, api_key=api_key)
    raise ValueError(f"unknown vector backend {settings.vector_backend!r}")
