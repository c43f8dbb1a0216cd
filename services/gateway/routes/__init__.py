"""The gateway's HTTP routes, one FastAPI `APIRouter` per resource.

Each module parses HTTP and delegates to a service it gets from the `Services` dependency
(`gateway.dependencies`); each route but ``/healthz`` declares the scope it needs with `auth.requires`.
Routes may import the counterpoint base (errors, schemas) and the gateway's own modules; nothing in
the gateway imports them except `gateway.app`. `ROUTERS` is the order the app includes them in, which
is the order of the OpenAPI schema's paths.
"""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.services.gateway.routes import (
    backups,
    collections,
    embeddings,
    generation,
    health,
    jobs,
    keys,
    models,
    rerank,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    models.router,
    embeddings.router,
    rerank.router,
    collections.router,
    generation.router,
    keys.router,
    backups.router,
    jobs.router,
)
