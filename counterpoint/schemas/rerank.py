"""``POST /v1/rerank``: Cohere/TEI-style reranking bodies."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from counterpoint.schemas.base import StrictModel, Usage, not_blank


class RerankDocument(StrictModel):
    text: str


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
        not_blank(self.query, "query")
        if (self.documents is None) == (self.texts is None):
            raise ValueError("give exactly one of 'documents' or 'texts'")
        if not self.items():
            raise ValueError("documents must not be empty: give at least one document to rerank")
        for i, text in enumerate(self.items()):
            if not text.strip():
                raise ValueError(f"document {i} is empty")
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
