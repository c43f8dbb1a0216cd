"""What every request and response body builds on: strict parsing and token usage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
