"""Reranking bodies: ``POST /v1/rerank`` and ``/v2/rerank`` (Cohere's shape, TEI's ``texts`` too) and TEI's ``POST /rerank``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from counterpoint.schemas.base import StrictModel, Usage, not_blank


class RerankDocument(StrictModel):
    text: str


def check_query_and_documents(query: str, documents: list[str]) -> None:
    """A rerank needs a query and at least one document, none of them blank (ValueError: a 422)."""
    not_blank(query, "query")
    if not documents:
        raise ValueError("documents must not be empty: give at least one document to rerank")
    for i, text in enumerate(documents):
        if not text.strip():
            raise ValueError(f"document {i} is empty")


class RerankRequest(StrictModel):
    """Cohere/TEI-style rerank: ``documents`` (strings or ``{"text"}``) or TEI's ``texts``."""

    model: str | None = None
    query: str
    documents: list[str | RerankDocument] | None = None
    texts: list[str] | None = None
    top_n: int | None = Field(None, ge=1, description="Return only the best n (default: all).")
    return_documents: bool = False

    @model_validator(mode="after")
    def _one_list(self) -> RerankRequest:
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give exactly one of 'documents' or 'texts'")
        check_query_and_documents(self.query, self.items())
        return self

    def items(self) -> list[str]:
        docs = self.documents if self.documents is not None else self.texts or []
        return [d.text if isinstance(d, RerankDocument) else d for d in docs]


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankDocument | None = None
    truncated: bool = Field(False, description="The pair was cut to the reranker's token limit.")


class RerankResponse(BaseModel):
    model: str
    results: list[RerankResult]
    usage: Usage
    truncated: int = Field(0, description="How many pairs were cut to the token limit.")
    warnings: list[str] = Field(default_factory=list)


class TeiRerankRequest(StrictModel):
    """text-embeddings-inference's ``POST /rerank`` body: ``query`` and ``texts``.

    ``truncate`` is TEI's: false (its default) refuses a pair longer than the reranker's token
    limit with a 413, true cuts it. ``raw_scores`` (logits instead of the model's activation) is
    not offered: the served score is the cross-encoder's own output, so true is refused by name.
    """

    query: str
    texts: list[str]
    return_text: bool = False
    truncate: bool = False
    truncation_direction: Literal["right", "Right"] = Field(
        "right", description="Only right truncation (the end of the document is cut)."
    )
    raw_scores: bool = False

    @model_validator(mode="after")
    def _check(self) -> TeiRerankRequest:
        check_query_and_documents(self.query, self.texts)
        if self.raw_scores:
            raise ValueError(
                "raw_scores=true is not supported: scores are the cross-encoder's output as served"
            )
        return self

    def as_rerank(self) -> RerankRequest:
        return RerankRequest(query=self.query, texts=self.texts)


class TeiRank(BaseModel):
    """One entry of TEI's answer (a JSON list, best first)."""

    index: int
    score: float
    text: str | None = None
