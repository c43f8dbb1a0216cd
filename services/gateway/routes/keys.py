"""API keys: create (the key is shown once), list and revoke; admin scope only."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from counterpoint.schemas import KeyCreate, KeyCreated, KeyInfo, KeyList
from counterpoint.services.gateway.auth import ADMIN
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["keys"])


@router.post("/v1/keys", response_model=KeyCreated, status_code=201, dependencies=[ADMIN])
async def create_key(body: KeyCreate, services: Services) -> KeyCreated:
    """Create an API key with the given scopes; the key is in this response only."""
    record, key = await asyncio.to_thread(services.keys.create, body.name, body.scopes)
    return KeyCreated(**KeyInfo.from_record(record).model_dump(), key=key)


@router.get("/v1/keys", response_model=KeyList, dependencies=[ADMIN])
async def list_keys(services: Services, include_revoked: bool = False) -> KeyList:
    records = await asyncio.to_thread(services.keys.list, include_revoked=include_revoked)
    return KeyList(keys=[KeyInfo.from_record(r) for r in records])


@router.delete("/v1/keys/{key_id}", response_model=KeyInfo, dependencies=[ADMIN])
async def revoke_key(key_id: str, services: Services) -> KeyInfo:
    """Revoke a key by id or prefix; it stops working at once on this gateway."""
    return KeyInfo.from_record(await asyncio.to_thread(services.keys.revoke, key_id))
