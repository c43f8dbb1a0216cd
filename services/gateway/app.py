"""The gateway's FastAPI application: `create_app` wires the services, routes, middleware and handlers.

Routes only parse HTTP and delegate to `GatewayCore` and the other services (`gateway.routes`, one
router per resource); errors leave as ``{"error": {"type": ..., "message": ...}}`` (`gateway.errors`).
This is the top of the gateway: it may import every gateway module, and only `gateway.deployment`
(and tests) import it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from counterpoint import __version__
from counterpoint.schemas import IngestRequest
from counterpoint.services.gateway.auth import ADMIN, READ, TRAIN, WRITE, Guard, KeyStore
from counterpoint.services.gateway.backups import gateway_backups
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.services.gateway.dependencies import GatewayServices, HealthCheck
from counterpoint.services.gateway.errors import install_error_handlers
from counterpoint.services.gateway.generation import GenerationService
from counterpoint.services.gateway.jobs import JobService
from counterpoint.services.gateway.middleware import BodySizeLimit, ReplicaHeader
from counterpoint.services.gateway.models import ModelRegistryService
from counterpoint.services.gateway.routes import ROUTERS
from counterpoint.services.gateway.routes.backups import RESTORE_PATH

# Re-exported: tests and callers import the scopes and the restore path from here.
__all__ = ["ADMIN", "READ", "RESTORE_PATH", "TRAIN", "WRITE", "HealthCheck", "api_routes", "create_app"]


def create_app(
    core: GatewayCore,
    extra_health: HealthCheck | None = None,
    jobs: JobService | None = None,
    generation: GenerationService | None = None,
    registry: ModelRegistryService | None = None,
    replica: str | None = None,
) -> FastAPI:
    """Build the gateway's FastAPI app around a `GatewayCore` (and a `JobService` for training,
    a `GenerationService` for text generation, a `ModelRegistryService` for registered models);
    ``replica`` names this replica in every response's ``x-counterpoint-replica`` header."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if core.settings.gateway_replicas == 1:
            await core.reindexer.recover()  # a re-index the last gateway left half-done is undone
            yield
            return
        watch = asyncio.create_task(core.reindexer.watch())  # the others may be running theirs
        try:
            yield
        finally:
            watch.cancel()

    app = FastAPI(
        title="Counterpoint",
        version=__version__,
        description="Train, serve and search contrastive embedding models.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    keys = KeyStore(core.registry, core.settings)
    app.state.guard = Guard(core.settings, keys)
    app.state.services = GatewayServices(
        core=core,
        keys=keys,
        backups=gateway_backups(core),
        extra_health=extra_health,
        job_service=jobs,
        generation_service=generation,
        registry_service=registry,
    )
    limits = core.settings.limits
    app.add_middleware(
        BodySizeLimit,
        max_bytes=limits.max_body_bytes,
        overrides={RESTORE_PATH: (limits.max_restore_bytes, "max_restore_bytes")},
    )
    if replica is not None:
        app.add_middleware(ReplicaHeader, replica=replica)
    app.openapi = lambda: _openapi_with_ingest_body(app)  # type: ignore[method-assign]
    for router in ROUTERS:
        app.include_router(router)
    return app


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of ``app``, its routers' included: ``app.routes`` lists an included router as one
    entry (FastAPI resolves its routes lazily)."""
    routes = (context.original_route for context in iter_route_contexts(app.routes))
    return [route for route in routes if isinstance(route, APIRoute)]


def _openapi_with_ingest_body(app: FastAPI) -> dict[str, Any]:
    """The standard schema plus the ingest body, which the route parses by hand."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        ingest = IngestRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(ingest.pop("$defs", {}))
        components["IngestRequest"] = ingest
        app.openapi_schema = schema
    return app.openapi_schema
