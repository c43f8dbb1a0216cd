"""``POST /v1/embeddings``: OpenAI's embeddings bodies, so existing clients work unchanged."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from counterpoint.schemas.base import StrictModel, Usage


class EmbeddingRequest(StrictModel):
    """OpenAI ``POST /v1/embeddings`` body."""

    input: str | list[str]
    model: str | None = None
    dimensions: int | None = Field(None, ge=1, description="Matryoshka truncation, then re-normalised.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingItem(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingItem]
    model: str
    usage: Usage
