"""The gateway as a Ray Serve ingress deployment.

It owns the registry database connection and the vector store: a Qdrant server's client, or the
embedded engine, which admits one process per collection directory, so one replica opens it itself
and several (``gateway_replicas``) share it through the `vectors` deployment. It reaches the embedder
and, when text generation is enabled, the decode deployment through their handles. Search queries take the
query lane (`QueryLane`, with ``settings.query_lane``): encoded in this process, never queued
behind ingest in the embed replica.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.base import VectorStore
from counterpoint.infra.vectors.factory import make_vector_store
from counterpoint.schemas import ComponentHealth
from counterpoint.services.decode.backends import ServeDecoder, served_model_name
from counterpoint.services.embed.backends import ServeEmbedder
from counterpoint.services.embed.query_lane import QueryLane
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.direct_ingress import reuse_port_on_restart
from counterpoint.services.gateway.generation import GenerationService
from counterpoint.services.gateway.jobs import JobService, RayJobSubmitter
from counterpoint.services.gateway.models import ModelRegistryService
from counterpoint.services.rerank.backends import ServeReranker
from counterpoint.services.vectors.remote import RemoteVectorStore
from counterpoint.settings import Settings


@serve.deployment(name="gateway", max_ongoing_requests=512)
@serve.ingress()
class GatewayDeployment:
    def __init__(
        self,
        settings: dict[str, Any],
        embedder: DeploymentHandle,
        decoder: DeploymentHandle | None = None,
        reranker: DeploymentHandle | None = None,
        vectors: DeploymentHandle | None = None,
    ) -> None:
        reuse_port_on_restart()  # before Serve starts this replica's direct-ingress listener, if any
        self.settings = Settings(**settings)
        self.settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        registry = Registry.from_url(self.settings.db_url)
        store: VectorStore = (
            make_vector_store(self.settings)
            if vectors is None
            else RemoteVectorStore(vectors, timeout_s=self.settings.vectors_timeout_s)
        )
        bulk = ServeEmbedder(embedder, timeout_s=self.settings.embed_timeout_s)
        lane = None
        if self.settings.query_lane:  # it gives way to the replica while the replica has work
            lane = QueryLane.serving(self.settings, busy=lambda: bulk.in_flight > 0)
        self.core = GatewayCore(
            self.settings,
            registry,
            store,
            bulk,
            ServeReranker(reranker) if reranker is not None else None,
            query_embedder=lane,
        )
        self.registry = ModelRegistryService(self.settings)
        self.jobs = JobService(self.settings, registry, RayJobSubmitter(self.settings.job_api_url))
        self.generation = (
            GenerationService(
                self.settings, ServeDecoder(decoder), served_model_name(self.settings.decode_model)
            )
            if decoder is not None
            else None
        )

    async def _platform_health(self) -> dict[str, ComponentHealth]:
        """Parts outside the gateway: Ray Serve (we answer, so it is up) and MLflow."""
        parts = {"serve": ComponentHealth(status="ok", detail="gateway replica answering")}
        if self.settings.start_mlflow or self.settings.mlflow_tracking_uri:
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    reply = await client.get(f"{self.settings.tracking_uri}/health")
                ok = reply.status_code == 200
                parts["mlflow"] = ComponentHealth(
                    status="ok" if ok else "down", detail=self.settings.tracking_uri
                )
            except httpx.HTTPError as exc:
                parts["mlflow"] = ComponentHealth(
                    status="down", detail=f"{self.settings.tracking_uri}: {exc}"
                )
        return parts

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(
            self.core,
            extra_health=self._platform_health,
            jobs=self.jobs,
            generation=self.generation,
            registry=self.registry,
            replica=serve.get_replica_context().replica_id.unique_id,
        )
