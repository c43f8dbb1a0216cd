"""``POST /v1/rerank``: TEI/Cohere-style reranking with the served cross-encoder."""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.schemas import RerankRequest, RerankResponse
from counterpoint.services.gateway.auth import READ
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["rerank"])


@router.post("/v1/rerank", response_model=RerankResponse, dependencies=[READ])
async def rerank(body: RerankRequest, services: Services) -> RerankResponse:
    """Score ``documents`` (or TEI's ``texts``) for ``query`` with the cross-encoder, best first."""
    return await services.core.rerank(body)
