"""Backups: what a collection restore restored, and the registry dump."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from counterpoint.schemas.collections import CollectionInfo


class CollectionRestored(BaseModel):
    """What ``POST /v1/backups/collections`` restored, and from which backup."""

    collection: CollectionInfo
    source: str = Field(description="The collection's name in the backup.")
    backed_up_at: datetime
    points: int = Field(description="Points restored (the backup's count).")
    snapshot_format: str = Field(description="edge-shard or qdrant-snapshot.")
    replaced: bool = Field(description="An existing collection of that name was overwritten (replace).")


class RegistryDump(BaseModel):
    """Every row of every registry table (``GET /v1/backups/registry``); load it with ``counterpoint restore
    registry`` into an empty SQLite or PostgreSQL database."""

    format: Literal["counterpoint-registry-dump"] = "counterpoint-registry-dump"
    format_version: int
    schema_revision: str
    created_at: datetime
    counterpoint_version: str
    source_dialect: str
    tables: dict[str, list[dict[str, Any]]]
