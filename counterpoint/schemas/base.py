"""What every request and response body builds on: strict parsing and token usage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def not_blank(value: str, what: str) -> str:
    """``value``, unless it is empty or only whitespace: then a ValueError naming ``what``."""
    if not value.strip():
        raise ValueError(f"{what} must not be empty")
    return value


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int
