"""``POST /v1/embeddings``: OpenAI's embeddings bodies, so existing clients work unchanged."""

from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator

from counterpoint.schemas.base import StrictModel, Usage


class EmbeddingRequest(StrictModel):
    """OpenAI ``POST /v1/embeddings`` body."""

    input: str | list[str]
    model: str | None = None
    dimensions: int | None = Field(None, ge=1, description="Matryoshka truncation, then re-normalised.")
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
            raise ValueError(
                "token ids are not accepted (each model has its own tokenizer): send the text, "
                "a string or a list of strings"
            )
        return value

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


def encode_embedding(vector: np.ndarray) -> str:
    """A vector as ``encoding_format: base64`` sends it: its little-endian float32 bytes."""
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode()


def decode_embedding(encoded: str) -> np.ndarray:
    """The float32 vector a base64 ``embedding`` holds."""
    return np.frombuffer(base64.b64decode(encoded), dtype="<f4")
