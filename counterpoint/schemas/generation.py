"""Text generation: OpenAI's completions and chat completions (whole and streamed chunks), plus the
decoding options of `GenerationParams` (decoding, penalty_alpha, top_k, cd_alpha, amateur_layers, ...).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from counterpoint.decoding.params import MAX_CS_TOP_K, DecodingMethod, GenerationParams
from counterpoint.schemas.base import StrictModel, not_blank

FinishReason = Literal["stop", "length"]
FinishDetail = Literal["eos", "stop", "length"]


class StreamOptions(StrictModel):
    include_usage: bool = Field(False, description="Send a last chunk with the token usage (choices empty).")


class GenerationRequest(GenerationParams):
    """What both generation routes accept: the decoding options plus OpenAI's request fields."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="Served causal LM; default: the one served.")
    max_tokens: int | None = Field(  # type: ignore[assignment]
        None, ge=1, description="Most new tokens (default 128); above the gateway's max_tokens_limit: 413."
    )
    stream: bool = Field(False, description="Answer with server-sent events, OpenAI's chunk format.")
    stream_options: StreamOptions | None = None
    n: int = Field(1, description="Choices per request; only 1 is supported.")
    user: str | None = None
    temperature: float = Field(  # type: ignore[assignment]
        1.0,
        ge=0,
        le=2,
        description="Softmax temperature, OpenAI's range 0-2. 0 means greedy; a request that sets "
        "temperature or top_p without `decoding` samples (OpenAI's reading), at 0 it decodes greedily.",
    )

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported (one choice per request)")
        return value

    @model_validator(mode="after")
    def _method_options(self) -> GenerationRequest:
        if self.decoding == "contrastive_search" and self.top_k is not None and self.top_k > MAX_CS_TOP_K:
            raise ValueError(
                f"contrastive_search takes at most top_k={MAX_CS_TOP_K} candidates, got {self.top_k}"
            )
        return self

    def method(self) -> DecodingMethod:
        """The decoding method: ``decoding`` if the request names one; else sampling if it sets
        temperature or top_p (what an OpenAI client means by them), else greedy. Sampling at
        temperature 0 is greedy: the limit of a sharper and sharper softmax."""
        method = self.decoding
        if "decoding" not in self.model_fields_set and self.model_fields_set & {"temperature", "top_p"}:
            method = "sampling"
        return "greedy" if method == "sampling" and self.temperature == 0 else method

    def generation_params(self, max_tokens: int) -> GenerationParams:
        """The library's options, with ``max_tokens`` resolved by the gateway and the method resolved."""
        values = {name: getattr(self, name) for name in GenerationParams.model_fields}
        values["max_tokens"] = max_tokens
        values["decoding"] = self.method()
        if self.temperature == 0:  # only sampling reads it, and sampling at 0 became greedy
            values["temperature"] = 1.0
        return GenerationParams(**values)


class CompletionRequest(GenerationRequest):
    """OpenAI ``POST /v1/completions``: continue a raw text prompt."""

    prompt: str

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        return not_blank(value, "prompt")


class ChatMessage(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(GenerationRequest):
    """OpenAI ``POST /v1/chat/completions``: messages rendered with the model's chat template."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(
        None, ge=1, description="OpenAI's newer name for max_tokens in chat; give one of the two."
    )

    @model_validator(mode="after")
    def _one_token_limit(self) -> ChatCompletionRequest:
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise ValueError(
                    f"max_tokens={self.max_tokens} and max_completion_tokens={self.max_completion_tokens} "
                    "disagree: give one of the two"
                )
            self.max_tokens = self.max_completion_tokens
        return self

    @field_validator("messages")
    @classmethod
    def _messages(cls, value: list[ChatMessage]) -> list[ChatMessage]:
        if not any(m.content.strip() for m in value):
            raise ValueError("messages must contain some text")
        return value


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason = Field(
        description="OpenAI's: 'stop' (end of sequence or stop string) or 'length'."
    )
    finish_detail: FinishDetail = Field(
        description="'eos' (end-of-sequence token), 'stop' (stop string) or 'length'."
    )
    logprobs: None = None


class GenerationResponse(BaseModel):
    """What both generation routes answer; each names its ``object`` and the shape of its ``choices``."""

    id: str
    object: str
    created: int
    model: str
    decoding: str
    choices: list[Any]
    usage: CompletionUsage

    @property
    def finish_reason(self) -> str:
        return str(self.choices[0].finish_reason)


class CompletionResponse(GenerationResponse):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]

    @property
    def text(self) -> str:
        return self.choices[0].text


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: FinishReason
    finish_detail: FinishDetail


class ChatCompletionResponse(GenerationResponse):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]

    @property
    def text(self) -> str:
        return self.choices[0].message.content


class CompletionChunkChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    finish_detail: FinishDetail | None = None
    logprobs: None = None


class GenerationChunk(BaseModel):
    """One server-sent event of a streamed generation (``data: {...}``); the last may carry the usage."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Any]
    usage: CompletionUsage | None = None


class CompletionChunk(GenerationChunk):
    """One server-sent event of a streamed completion (``data: {...}``)."""

    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChunkChoice]


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = None
    finish_detail: FinishDetail | None = None


class ChatCompletionChunk(GenerationChunk):
    """One server-sent event of a streamed chat completion (``data: {...}``)."""

    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]
