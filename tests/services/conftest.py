"""Fixtures for service tests: a tiny in-process embedder behind the real gateway app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.settings import Settings
from tests.tiny_models import build_tiny_bi_encoder

TINY = "tiny"


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_path: Path) -> TextEmbedder:
    return TextEmbedder(str(tiny_model_path), max_seq_length=64, batch_size=16)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        embed_model=TINY,
        max_texts_per_request=8,
        max_documents_per_ingest=50,
        max_top_k=100,
        ingest_embed_batch=4,
        start_mlflow=False,
    )


@pytest.fixture()
def core(settings: Settings, tiny_embedder: TextEmbedder) -> Iterator[GatewayCore]:
    registry = Registry.from_url(settings.db_url)
    store = EdgeVectorStore(settings.vectors_dir)
    yield GatewayCore(settings, registry, store, LocalEmbedder(TINY, tiny_embedder))
    store.close()
    registry.close()


@pytest.fixture()
def api(core: GatewayCore) -> Iterator[TestClient]:
    with TestClient(create_app(core), raise_server_exceptions=False) as client:
        yield client
