"""Fixtures for service tests: a tiny in-process embedder behind the real gateway app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.settings import Settings
from tests.services.in_process import in_process_core
from tests.settings_factory import SMALL_LIMITS, TINY, unit_settings
from tests.tiny_models import build_tiny_bi_encoder

MODEL = "tiny-reg"  # registered in the `tracking` fixture


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bi_encoder(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_path: Path) -> TextEmbedder:
    return TextEmbedder(str(tiny_model_path), max_seq_length=64, batch_size=16)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return unit_settings(tmp_path, **SMALL_LIMITS)


@pytest.fixture()
def core(settings: Settings, tiny_embedder: TextEmbedder) -> Iterator[GatewayCore]:
    with in_process_core(settings, LocalEmbedder(TINY, tiny_embedder)) as core:
        yield core


@pytest.fixture()
def api(core: GatewayCore) -> Iterator[TestClient]:
    with TestClient(create_app(core), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two registered versions: v1 (32-d, alias champion) and v2 (48-d)."""
    import mlflow
    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import (
        get_or_create_experiment,
        log_sentence_transformer,
        register_model,
        set_alias,
    )

    root = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = get_or_create_experiment("registered-models-test", uri)
    paths = {}
    for version, hidden in ((1, 32), (2, 48)):
        path = build_tiny_bi_encoder(root / f"v{version}", hidden=hidden, seed=version)
        with mlflow.start_run(experiment_id=experiment):
            mlflow.log_metric("eval/ndcg_at_10", 10.0 * version)
            info = log_sentence_transformer(SentenceTransformer(str(path), device="cpu"), name="model")
        assert register_model(info.model_uri, MODEL, uri) == str(version)
        paths[version] = path
    set_alias(MODEL, "champion", 1, uri)
    return {"uri": uri, "paths": paths}


@pytest.fixture(scope="session")
def tiny_reranker(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from counterpoint.models.reranker import TextReranker
    from tests.tiny_models import build_tiny_cross_encoder

    return TextReranker(str(build_tiny_cross_encoder(tmp_path_factory.mktemp("rerankers"))), max_length=64)
