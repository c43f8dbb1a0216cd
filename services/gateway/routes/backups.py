"""Backups: download a collection's archive, restore one from an upload, dump the registry; admin only."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from counterpoint.schemas import CollectionRestored, RegistryDump
from counterpoint.services.gateway.auth import ADMIN
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["backups"])

RESTORE_PATH = "/v1/backups/collections"
"""The restore route: its body may be far larger than other routes' (setting max_restore_bytes)."""

ARCHIVE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.get(
    "/v1/backups/collections/{name}",
    response_class=FileResponse,
    dependencies=[ADMIN],
    responses={200: {"content": {"application/gzip": {}}, "description": "the backup archive"}},
)
async def backup_collection(name: str, services: Services) -> FileResponse:
    """A backup archive of the collection (.cpbackup.tar.gz): its registry entry and a consistent
    snapshot of the vectors serving it now (ingest waits while the snapshot is copied)."""
    path, cleanup = await services.backups.backup_for_download(name)
    return FileResponse(
        path, media_type="application/gzip", filename=path.name, background=BackgroundTask(cleanup)
    )


@router.post(
    RESTORE_PATH,
    response_model=CollectionRestored,
    status_code=201,
    dependencies=[ADMIN],
    openapi_extra=ARCHIVE_OPENAPI,
)
async def restore_collection(
    request: Request, services: Services, name: str | None = None, replace: bool = False
) -> CollectionRestored:
    """Restore a collection from a backup archive sent as the body, as ``name`` (default: its name in
    the backup). An existing collection is refused (409) unless ``replace``; a bad archive is a 422
    and changes nothing."""
    return await services.backups.restore_upload(request.stream(), name=name, replace=replace)


@router.get("/v1/backups/registry", response_model=RegistryDump, dependencies=[ADMIN])
async def backup_registry(services: Services) -> RegistryDump:
    """Every row of the registry database as JSON (`counterpoint restore registry` loads it)."""
    return await asyncio.to_thread(services.backups.dump_registry)
