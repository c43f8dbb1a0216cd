"""A real `GatewayCore` for tests, in this process: a SQLite registry and the embedded Qdrant engine in the
settings' data directory, closed when the ``with`` block ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient

from counterpoint.client import Client
from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.services.embed.backends import EmbedderBackend
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.rerank.backends import RerankerBackend
from counterpoint.settings import Settings


@contextmanager
def in_process_core(
    settings: Settings, embedder: EmbedderBackend, reranker: RerankerBackend | None = None
) -> Iterator[GatewayCore]:
    registry = Registry.from_url(settings.db_url)
    store = EdgeVectorStore(settings.vectors_dir)
    try:
        yield GatewayCore(settings, registry, store, embedder, reranker)
    finally:
        store.close()
        registry.close()


@contextmanager
def in_process_sdk(core: GatewayCore) -> Iterator[Client]:
    """An SDK client whose HTTP calls reach the real gateway app around ``core`` in this process."""
    http = TestClient(create_app(core), raise_server_exceptions=False)
    sdk = Client("http://testserver", api_key="")
    sdk._http = http
    with http:
        yield sdk


@contextmanager
def tiny_gateway_sdk(root: Path) -> Iterator[Client]:
    """A tiny bi-encoder served by an in-process gateway with its state under ``root``; its SDK client."""
    from counterpoint.models.embedder import TextEmbedder
    from counterpoint.services.embed.backends import LocalEmbedder
    from tests.settings_factory import TINY, unit_settings
    from tests.tiny_models import build_tiny_bi_encoder

    embedder = TextEmbedder(str(build_tiny_bi_encoder(root / "model")), max_seq_length=32)
    with (
        in_process_core(unit_settings(root), LocalEmbedder(TINY, embedder)) as core,
        in_process_sdk(core) as sdk,
    ):
        yield sdk
