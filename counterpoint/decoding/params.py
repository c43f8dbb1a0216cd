"""The decoding options as one pydantic model, shared by the library and the HTTP API.

Field names are the API's (``decoding``, ``max_tokens``); :meth:`GenerationParams.generate_kwargs`
maps them onto the keyword arguments of :func:`counterpoint.decoding.generate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

DecodingMethod = Literal["greedy", "sampling", "contrastive_search", "contrastive_decoding"]
DECODING_METHODS: tuple[str, ...] = ("greedy", "sampling", "contrastive_search", "contrastive_decoding")

DEFAULT_MAX_TOKENS = 128
DEFAULT_CS_TOP_K = 4
MAX_CS_TOP_K = 64  # contrastive search runs a batch of k per token: bound the cost of one request
DEFAULT_PENALTY_ALPHA = 0.6
DEFAULT_CD_ALPHA = 0.1
MAX_STOP_STRINGS = 4


class GenerationParams(BaseModel):
    """How to continue a prompt: the method and its options (unused options are ignored)."""

    decoding: DecodingMethod = Field(
        "greedy",
        description="greedy | sampling | contrastive_search (Su et al. 2022) | "
        "contrastive_decoding (Li et al. 2023).",
    )
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=4096, description="Most new tokens to generate.")
    temperature: float = Field(1.0, gt=0, description="sampling: softmax temperature.")
    top_k: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="sampling: keep the k most likely tokens (None: all). "
        f"contrastive_search: number of candidates k (None: {DEFAULT_CS_TOP_K}; at most {MAX_CS_TOP_K}).",
    )
    top_p: float = Field(1.0, gt=0, le=1, description="sampling: nucleus mass kept.")
    penalty_alpha: float = Field(
        DEFAULT_PENALTY_ALPHA, ge=0, le=1, description="contrastive_search: degeneration penalty α."
    )
    cd_alpha: float = Field(
        DEFAULT_CD_ALPHA, ge=0, le=1, description="contrastive_decoding: plausibility threshold α."
    )
    amateur_layers: int | None = Field(
        None,
        ge=1,
        description="contrastive_decoding: layers of the expert kept as the amateur (None: half of them).",
    )
    amateur_temperature: float = Field(
        1.0, gt=0, description="contrastive_decoding: temperature applied to the amateur's logits."
    )
    stop: list[str] | None = Field(
        None, description=f"Up to {MAX_STOP_STRINGS} strings that end generation; not included in the output."
    )
    seed: int | None = Field(None, description="sampling: random seed (None: not reproducible).")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_more_stops(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _check_stops(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings")
        if any(not s for s in value):
            raise ValueError("stop strings must be non-empty")
        return value

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`counterpoint.decoding.generate`."""
        return {
            "method": self.decoding,
            "max_new_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_k": self.top_k,
            "top_p": self.top_p,
            "penalty_alpha": self.penalty_alpha,
            "cd_alpha": self.cd_alpha,
            "amateur_layers": self.amateur_layers,
            "amateur_temperature": self.amateur_temperature,
            "stop": self.stop,
            "seed": self.seed,
        }
