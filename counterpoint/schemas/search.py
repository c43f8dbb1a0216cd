"""Searching a collection: by text or vector, with Qdrant-style filters (match, range,
must/should/must_not) and an optional rerank of the first stage.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from counterpoint.schemas.base import StrictModel, not_blank


class Range(StrictModel):
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Range:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("range needs at least one of gt, gte, lt, lte")
        return self


class MatchAny(StrictModel):
    any: list[str | int | bool] = Field(min_length=1)


class Condition(StrictModel):
    """One condition on a payload field: exactly one of ``match`` or ``range``."""

    key: str
    match: str | int | bool | MatchAny | None = None
    range: Range | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        if (self.match is None) == (self.range is None):
            raise ValueError(f"condition on '{self.key}' needs exactly one of 'match' or 'range'")
        return self


class Filter(StrictModel):
    """Qdrant-style boolean filter over indexed payload fields."""

    must: list[Condition] = Field(default_factory=list)
    should: list[Condition] = Field(default_factory=list)
    must_not: list[Condition] = Field(default_factory=list)

    def keys(self) -> set[str]:
        return {c.key for c in (*self.must, *self.should, *self.must_not)}


RetrievalMode = Literal["dense", "lexical", "hybrid"]
Fusion = Literal["rrf", "dbsf"]


class SearchRequest(StrictModel):
    query: str | None = None
    vector: list[float] | None = None
    top_k: int = Field(10, ge=1)
    filter: Filter | None = None
    with_text: bool = True
    rerank: bool = Field(False, description="Rescore the first stage's candidates with the cross-encoder.")
    rerank_top_k: int | None = Field(
        None, ge=1, description="First-stage candidates to rerank (default: the rerank_top_k setting)."
    )
    rerank_model: str | None = Field(None, description="Cross-encoder; default: the served reranker.")
    rerank_fusion: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Weight of the first stage in the final score (z-scored interpolation with the "
        "reranker's, counterpoint.fusion); default: the rerank_fusion setting (0: the reranker alone).",
    )
    mode: RetrievalMode = Field(
        "dense",
        description="'dense': the embedding model; 'lexical': BM25 over the collection's lexical vectors; "
        "'hybrid': both, fused in the engine (see fusion).",
    )
    fusion: Fusion = Field(
        "dbsf",
        description="How hybrid fuses its two rankings: 'rrf' (reciprocal rank fusion, weighted by "
        "lexical_weight) or 'dbsf' (each stage's scores normalised by their distribution, summed).",
    )
    lexical_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Hybrid with fusion 'rrf': the lexical ranking's share (the dense one gets 1 - it); "
        "default 0.5.",
    )
    candidates: int | None = Field(
        None, ge=1, description="Candidates each stage of a hybrid or MMR search fetches (default 100)."
    )
    mmr: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Diversity of maximal marginal relevance over the candidates' dense vectors: "
        "0 keeps the relevance order, 1 picks the most dissimilar. Null: no MMR.",
    )

    @model_validator(mode="after")
    def _query_or_vector(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' (text) or 'vector'")
        if self.query is not None:
            not_blank(self.query, "query")
        if self.rerank and self.query is None:
            raise ValueError("rerank needs a text 'query' (a cross-encoder reads the query)")
        if self.mode != "dense" and self.query is None:
            raise ValueError(f"mode '{self.mode}' needs a text 'query' (BM25 reads its words)")
        if self.lexical_weight is not None and (self.mode != "hybrid" or self.fusion != "rrf"):
            raise ValueError(
                "lexical_weight applies to mode 'hybrid' with fusion 'rrf' only (fusion defaults to 'dbsf')"
            )
        return self


class SearchHit(BaseModel):
    id: str
    score: float = Field(description="The final ranking's score: the reranker's when reranked.")
    title: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    first_stage_score: float | None = Field(None, description="Vector similarity, when reranked.")
    first_stage_rank: int | None = Field(None, description="1-based rank before reranking.")
    stage_scores: dict[str, float] = Field(
        default_factory=dict,
        description="A hybrid search's 'dense' and 'lexical' scores of this hit (a stage it was not a "
        "candidate of is missing); the fused score is 'score' (or 'first_stage_score' when reranked).",
    )


class SearchResponse(BaseModel):
    collection: str
    hits: list[SearchHit]
    took_ms: float
    timings: dict[str, float] = Field(
        default_factory=dict, description="Milliseconds per stage: embed, search, rerank."
    )
    reranked_by: str | None = None
