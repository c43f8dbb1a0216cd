"""The health of the parts the gateway's core depends on: registry database, embed, rerank, vector store.

Each probe turns any failure into a ``down`` component with the error's first 200 characters, so
``/healthz`` reports a broken part instead of failing. Imports the counterpoint base (schemas); the
core is passed in (`GatewayCore.health` calls `core_health`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from counterpoint.schemas import ComponentHealth, ModelCard

if TYPE_CHECKING:
    from counterpoint.services.gateway.core import GatewayCore

PROBE_TIMEOUT_S = 5


async def probe(check: Callable[[], Awaitable[ComponentHealth]]) -> ComponentHealth:
    """``check``'s answer, or ``down`` with what it raised."""
    try:
        return await check()
    except Exception as exc:  # noqa: BLE001 - health reports any failure
        return ComponentHealth(status="down", detail=str(exc)[:200])


def serving(cards: list[ModelCard]) -> ComponentHealth:
    return ComponentHealth(status="ok", detail=", ".join(c.id for c in cards))


async def core_health(core: GatewayCore) -> dict[str, ComponentHealth]:
    """database, embed, rerank (when one is configured) and vectors, in that order."""

    async def database() -> ComponentHealth:
        core.registry.list_collections()
        return ComponentHealth(status="ok")

    async def embed() -> ComponentHealth:
        return serving(await asyncio.wait_for(core.models(), timeout=PROBE_TIMEOUT_S))

    async def vectors() -> ComponentHealth:
        await asyncio.to_thread(core.store.collection_exists, "__health__")
        return ComponentHealth(status="ok", detail=core.settings.vector_backend)

    parts = {"database": await probe(database), "embed": await probe(embed)}
    reranker = core.reranker
    if reranker is not None:

        async def rerank() -> ComponentHealth:
            cards = await asyncio.wait_for(reranker.models(), timeout=PROBE_TIMEOUT_S)
            if not cards:
                return ComponentHealth(status="down", detail="the configured reranker is not available yet")
            return serving(cards)

        parts["rerank"] = await probe(rerank)
    parts["vectors"] = await probe(vectors)
    return parts
