"""The real gateway app, in-process, for schema-driven fuzzing: one with auth off, one with auth on.

Same construction as tests/services/conftest.py (a real `GatewayCore`, SQLite registry, embedded
Qdrant, the tiny in-process embedder), but module-scoped: the fuzzer's calls share one gateway, as
a client's would. A collection ``docs`` (three documents, a ``year`` index) gives path parameters
something that exists. No jobs, MLflow registry service, decode or rerank service is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.auth import KeyStore
from tests.services.in_process import in_process_core
from tests.settings_factory import SMALL_LIMITS, TINY, unit_settings
from tests.tiny_models import build_tiny_bi_encoder

COLLECTION = "docs"
DOCS = [
    {"id": "a", "text": "The keeper tends the lamp.", "metadata": {"year": 2020}},
    {"id": "b", "text": "Bread needs yeast and time.", "metadata": {"year": 2021}},
    {"id": "c", "text": "Contrastive learning of sentence embeddings.", "metadata": {"year": 2022}},
]


@dataclass
class Gateway:
    app: FastAPI
    client: TestClient
    headers: dict[str, str]  # what a legitimate caller sends (the admin key when auth is on)
    read_key: str | None = None  # a key with the read scope only (auth on)

    def ensure_collection(self) -> None:
        """Re-create the ``docs`` collection if a fuzzed DELETE removed it."""
        if self.client.get(f"/v1/collections/{COLLECTION}", headers=self.headers).status_code == 404:
            body = {"name": COLLECTION, "payload_indexes": {"year": "integer"}}
            assert self.client.post("/v1/collections", json=body, headers=self.headers).status_code == 201
            ingest = self.client.post(f"/v1/collections/{COLLECTION}/documents", json={"documents": DOCS},
                                      headers=self.headers)  # fmt: skip
            assert ingest.status_code == 200, ingest.text


@pytest.fixture(scope="session")
def fuzz_embedder(tmp_path_factory: pytest.TempPathFactory) -> TextEmbedder:
    path = build_tiny_bi_encoder(tmp_path_factory.mktemp("fuzz-models"))
    return TextEmbedder(str(path), max_seq_length=64, batch_size=16)


def _gateway(root: Path, embedder: TextEmbedder, *, auth: bool) -> Iterator[Gateway]:
    settings = unit_settings(
        root,
        **SMALL_LIMITS,
        # models:/NAME@ALIAS look-ups go to an empty local store, not to an MLflow server that isn't there
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        auth_enabled=auth,
        rate_limit=None,
    )
    with in_process_core(settings, LocalEmbedder(TINY, embedder)) as core:
        headers: dict[str, str] = {}
        read_key = None
        if auth:
            keys = KeyStore(core.registry, settings)
            _, admin = keys.create("fuzz-admin", ["admin"])
            _, read_key = keys.create("fuzz-reader", ["read"])
            headers = {"Authorization": f"Bearer {admin}"}
        app = create_app(core)
        with TestClient(app, raise_server_exceptions=False) as client:
            gateway = Gateway(app, client, headers, read_key)
            gateway.ensure_collection()
            yield gateway


@pytest.fixture(scope="module")
def open_gateway(tmp_path_factory: pytest.TempPathFactory, fuzz_embedder: TextEmbedder) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory.mktemp("fuzz-open"), fuzz_embedder, auth=False)


@pytest.fixture(scope="module")
def guarded_gateway(
    tmp_path_factory: pytest.TempPathFactory, fuzz_embedder: TextEmbedder
) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory.mktemp("fuzz-guarded"), fuzz_embedder, auth=True)
