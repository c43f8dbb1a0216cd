"""``GET /healthz``: each part's status and the overall one; the only route without a key."""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.schemas import Health
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz(services: Services) -> Health:
    parts = await services.core.health()
    if services.generation_service is not None:
        parts["decode"] = await services.generation_service.health()
    if services.extra_health is not None:
        parts.update(await services.extra_health())
    states = {p.status for p in parts.values()}
    overall = "ok" if states <= {"ok"} else ("down" if states == {"down"} else "degraded")
    return Health(status=overall, components=parts)
