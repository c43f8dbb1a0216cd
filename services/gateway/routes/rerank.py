"""Reranking with the served cross-encoder: Cohere's routes (``/v1/rerank``, ``/v2/rerank``: the v1
and v2 clients) and text-embeddings-inference's ``/rerank``, one scoring path under all three."""

from __future__ import annotations

from fastapi import APIRouter

from counterpoint.errors import LimitExceeded
from counterpoint.schemas import RerankRequest, RerankResponse, TeiRank, TeiRerankRequest
from counterpoint.services.gateway.auth import READ
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["rerank"])


@router.post("/v1/rerank", response_model=RerankResponse, dependencies=[READ])
@router.post("/v2/rerank", response_model=RerankResponse, dependencies=[READ])
async def rerank(body: RerankRequest, services: Services) -> RerankResponse:
    """Score ``documents`` (or TEI's ``texts``) for ``query`` with the cross-encoder, best first."""
    return await services.core.rerank(body)


@router.post("/rerank", response_model=list[TeiRank], response_model_exclude_none=True, dependencies=[READ])
async def tei_rerank(body: TeiRerankRequest, services: Services) -> list[TeiRank]:
    """TEI's shape: ``{"query", "texts"}`` in, ``[{"index", "score", "text"?}]`` out, best first."""
    answer = await services.core.rerank(body.as_rerank())
    if not body.truncate and answer.truncated:
        cut = [r.index for r in answer.results if r.truncated]
        raise LimitExceeded(
            f"texts {cut} with the query are longer than the reranker's "
            f"{services.core.settings.rerank_max_length} tokens (setting rerank_max_length); "
            "send truncate=true to cut them"
        )
    return [
        TeiRank(
            index=r.index, score=r.relevance_score, text=body.texts[r.index] if body.return_text else None
        )
        for r in answer.results
    ]
