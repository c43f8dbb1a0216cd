"""Turning a cross-encoder's scores into answers: the ``/v1/rerank`` response and a reranked search's hits.

Pure functions over `counterpoint.models.reranker.Scores`; `GatewayCore` checks the request and calls
the reranker. Imports the counterpoint base (fusion, models, schemas) only.
"""

from __future__ import annotations

from counterpoint.fusion import fuse_scores
from counterpoint.models.reranker import Scores
from counterpoint.schemas import RerankDocument, RerankRequest, RerankResponse, RerankResult, SearchHit, Usage


def rerank_response(
    request: RerankRequest, docs: list[str], scores: Scores, model: str, max_length: int
) -> RerankResponse:
    """The best ``top_n`` documents first, with a warning when pairs were cut to ``max_length`` tokens."""
    order = sorted(range(len(docs)), key=lambda i: -float(scores.scores[i]))[: request.top_n or len(docs)]
    results = [
        RerankResult(
            index=i,
            relevance_score=float(scores.scores[i]),
            document=RerankDocument(text=docs[i]) if request.return_documents else None,
            truncated=scores.truncated[i],
        )
        for i in order
    ]
    cut = sum(scores.truncated)
    warnings = []
    if cut:
        warnings.append(
            f"{cut} of {len(docs)} (query, document) pairs were longer than {max_length} tokens and were "
            "truncated (the longer side first): their scores saw only the first tokens"
        )
    usage = Usage(prompt_tokens=scores.total_tokens, total_tokens=scores.total_tokens)
    return RerankResponse(model=model, results=results, usage=usage, truncated=cut, warnings=warnings)


def rescore(hits: list[SearchHit], scores: Scores, fusion: float) -> list[SearchHit]:
    """``hits`` (first-stage order) rescored by the reranker, best first; with ``fusion`` > 0 the final
    score mixes in the first stage's (`counterpoint.fusion.fuse_scores`). Each hit keeps its first-stage
    score and rank."""
    final = scores.scores
    if fusion > 0:
        final = fuse_scores([h.score for h in hits], scores.scores, fusion)
    for rank, (hit, score) in enumerate(zip(hits, final, strict=True), start=1):
        hit.first_stage_score, hit.first_stage_rank, hit.score = hit.score, rank, float(score)
    return sorted(hits, key=lambda h: -h.score)
