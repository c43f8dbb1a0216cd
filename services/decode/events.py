"""What a generation is, seen from the gateway: a prompt in, an async stream of events out.

A stream yields a `StreamStart` (the prompt is accepted), then text deltas (``str``), then a
`StreamEnd` with the token counts and why generation ended. `DecoderBackend` is what both
backends (in-process, Serve handle) provide; `collect` drains a stream; `served_model_name` is
the id a model is served under.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from counterpoint.decoding.params import GenerationParams
from counterpoint.errors import CounterpointError
from counterpoint.schemas import ModelCard

# A prompt: raw text (completions), chat messages ({"role", "content"}) or token ids.
Prompt = str | Sequence[Mapping[str, str]] | Sequence[int]


@dataclass(frozen=True)
class StreamStart:
    """First event: the prompt is accepted; ``prompt_tokens`` is its length."""

    prompt_tokens: int


@dataclass(frozen=True)
class StreamEnd:
    """Last event: token usage and the library's finish reason ("eos" | "stop" | "length")."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


DecodeEvent = StreamStart | str | StreamEnd


@dataclass(frozen=True)
class DecoderStats:
    """Generations running now, and finished since start (completed or stopped early)."""

    active: int
    finished: int


@runtime_checkable
class DecoderBackend(Protocol):
    def stream(self, prompt: Prompt, params: GenerationParams) -> AsyncGenerator[DecodeEvent, None]: ...

    async def models(self) -> list[ModelCard]: ...

    async def stats(self) -> DecoderStats: ...

    async def deployment_status(self) -> str: ...


async def collect(events: AsyncGenerator[DecodeEvent, None]) -> tuple[str, StreamEnd]:
    """Drain a stream: the whole text and its `StreamEnd`."""
    parts: list[str] = []
    end: StreamEnd | None = None
    async for event in events:
        if isinstance(event, str):
            parts.append(event)
        elif isinstance(event, StreamEnd):
            end = event
    if end is None:
        raise CounterpointError("the decoder's stream ended without a final event")
    return "".join(parts), end


def served_model_name(decode_model: str) -> str:
    """The id a causal LM is served under: the SmolLM2 name, a registry reference as given
    (``models:/NAME@ALIAS``), or a file's stem / a directory's name."""
    from counterpoint.models.paths import is_registry_ref
    from counterpoint.settings import DEFAULT_DECODE_MODEL

    if is_registry_ref(decode_model):
        return decode_model.rstrip("/")
    if decode_model.lower() in (
        DEFAULT_DECODE_MODEL.lower(),
        "smollm2",
        f"huggingfacetb/{DEFAULT_DECODE_MODEL}".lower(),
    ):
        return DEFAULT_DECODE_MODEL
    path = Path(decode_model)
    return path.stem if path.suffix == ".gguf" else path.name
