"""``POST /v1/embeddings``: OpenAI's embeddings route."""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.schemas import EmbeddingRequest, EmbeddingResponse
from counterpoint.services.gateway.auth import READ
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=EmbeddingResponse, dependencies=[READ])
async def embeddings(body: EmbeddingRequest, services: Services) -> EmbeddingResponse:
    return await services.core.embed(body)
