"""Text generation behind the gateway: OpenAI-style completions and chat completions.

`GenerationService` applies the gateway's limits, calls a `DecoderBackend` (the decode
deployment's streaming handle in the stack, an in-process model in unit tests) and shapes
OpenAI's response bodies. A streamed request is answered with server-sent events in
OpenAI's chunk format, ending with ``data: [DONE]``. Bad input is always a 4xx before the
first byte: the response starts only after the decoder's `StreamStart`, which it sends
once the prompt is tokenized and every option checked. An error after that (the replica
died) is sent as a last ``data: {"error": {...}}`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from counterpoint.decoding.params import DEFAULT_MAX_TOKENS, GenerationParams
from counterpoint.errors import CounterpointError, LimitExceeded, NotFound
from counterpoint.schemas import (
    ChatChoice,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    CompletionUsage,
    ComponentHealth,
    GenerationRequest,
    ModelCard,
)
from counterpoint.services.decode.backends import (
    DecodeEvent,
    DecoderBackend,
    Prompt,
    StreamEnd,
    StreamStart,
    collect,
)
from counterpoint.settings import Settings

logger = logging.getLogger("counterpoint.gateway")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"
STATS_WAIT_S = 2.0
"""How long /healthz waits for the decode replica's own answer before asking Serve's controller."""


def openai_finish_reason(detail: str) -> str:
    """The library's "eos" | "stop" | "length" as OpenAI's "stop" | "length"."""
    return "length" if detail == "length" else "stop"


def sse(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def _usage(end: StreamEnd) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=end.prompt_tokens,
        completion_tokens=end.completion_tokens,
        total_tokens=end.prompt_tokens + end.completion_tokens,
    )


class ClosingBody:
    """A streamed response body that is closed as soon as the task iterating it ends.

    Starlette's ``StreamingResponse`` never closes its body iterator. When a client disconnects
    while the response task waits in ``send()`` (a slow reader), the cancellation hits that task
    outside the generator, which stays suspended until the garbage collector finalizes it,
    seconds later, with the generation still running and its decode slot taken. A done-callback
    on the consuming task closes the generator at once instead (a no-op after a normal end).
    """

    def __init__(self, body: AsyncGenerator[bytes, None]) -> None:
        self._body = body
        self._watching = False
        self._closing: asyncio.Task[None] | None = None

    def __aiter__(self) -> ClosingBody:
        return self

    async def __anext__(self) -> bytes:
        if not self._watching:
            self._watching = True
            task = asyncio.current_task()
            if task is not None:
                task.add_done_callback(self._consumer_done)
        return await anext(self._body)

    def _consumer_done(self, task: asyncio.Task[Any]) -> None:
        self._closing = task.get_loop().create_task(self._body.aclose())  # kept: tasks are weakly held


class GenerationService:
    """Completions and chat completions over one served causal LM."""

    def __init__(self, settings: Settings, decoder: DecoderBackend, model_name: str) -> None:
        self.settings = settings
        self.decoder = decoder
        self.model_name = model_name
        self._card: ModelCard | None = None

    # --- models and health ---------------------------------------------------------------

    async def models(self) -> list[ModelCard]:
        """The served causal LM (its card is fetched once; a static one while the replica starts)."""
        if self._card is None:
            try:
                self._card = (await asyncio.wait_for(self.decoder.models(), timeout=5))[0]
            except Exception:  # noqa: BLE001 - still loading: answer without its context length
                return [ModelCard(id=self.model_name, kind="causal-lm")]
        return [self._card]

    async def health(self) -> ComponentHealth:
        """``ok`` with how many generations run; when the replica does not answer within
        `STATS_WAIT_S` (every slot generating queues the question), Serve's controller decides."""
        try:
            stats = await asyncio.wait_for(self.decoder.stats(), timeout=STATS_WAIT_S)
        except TimeoutError:
            try:
                state = await asyncio.wait_for(self.decoder.deployment_status(), timeout=5)
            except Exception as exc:  # noqa: BLE001 - health reports any failure
                return ComponentHealth(
                    status="down", detail=f"no answer from the replica or Serve: {exc}"[:200]
                )
            if state == "HEALTHY":
                return ComponentHealth(status="ok", detail=f"{self.model_name}, every slot generating")
            return ComponentHealth(status="down", detail=f"the replica does not answer; Serve says {state}")
        except Exception as exc:  # noqa: BLE001 - health reports any failure
            detail = str(exc)[:200] or f"{type(exc).__name__} (still loading the model?)"
            return ComponentHealth(status="down", detail=detail)
        return ComponentHealth(status="ok", detail=f"{self.model_name}, {stats.active} generating")

    # --- validation ----------------------------------------------------------------------

    def _params(self, request: GenerationRequest) -> GenerationParams:
        if request.model not in (None, self.model_name):
            raise NotFound(
                f"model '{request.model}' is not served for generation; available: ['{self.model_name}']"
            )
        limit = self.settings.limits.max_tokens_limit
        max_tokens = request.max_tokens if request.max_tokens is not None else min(DEFAULT_MAX_TOKENS, limit)
        if max_tokens > limit:
            raise LimitExceeded(
                f"max_tokens={max_tokens} exceeds the limit of {limit} tokens per request (setting max_tokens_limit)"
            )
        return request.generation_params(max_tokens)

    def _prompt(self, request: CompletionRequest | ChatCompletionRequest) -> Prompt:
        limit = self.settings.limits.max_text_chars
        if isinstance(request, CompletionRequest):
            if len(request.prompt) > limit:
                raise LimitExceeded(f"the prompt has {len(request.prompt)} characters; the limit is {limit}")
            return request.prompt
        size = sum(len(m.content) for m in request.messages)
        if size > limit:
            raise LimitExceeded(f"the messages have {size} characters; the limit is {limit}")
        return [m.model_dump() for m in request.messages]

    async def _open(
        self, request: CompletionRequest | ChatCompletionRequest
    ) -> tuple[GenerationParams, StreamStart, AsyncGenerator[DecodeEvent, None]]:
        """Start a generation and wait for its `StreamStart`: any error up to there is the caller's."""
        params = self._params(request)
        events = self.decoder.stream(self._prompt(request), params)
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise CounterpointError("the decoder ended the stream before starting") from None
        except BaseException:
            await events.aclose()
            raise
        if not isinstance(first, StreamStart):
            await events.aclose()
            raise CounterpointError(f"the decoder started with {type(first).__name__}, not StreamStart")
        return params, first, events

    # --- whole responses -----------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> CompletionResponse:
        params, _, events = await self._open(request)
        async with aclosing(events):
            text, end = await collect(events)
        choice = CompletionChoice(
            text=text, finish_reason=openai_finish_reason(end.finish_reason), finish_detail=end.finish_reason
        )  # type: ignore[arg-type]
        return CompletionResponse(
            id=f"cmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self.model_name,
            decoding=params.decoding, choices=[choice], usage=_usage(end),
        )  # fmt: skip

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletionResponse:
        params, _, events = await self._open(request)
        async with aclosing(events):
            text, end = await collect(events)
        choice = ChatChoice(
            message=ChatMessage(role="assistant", content=text),
            finish_reason=openai_finish_reason(end.finish_reason),  # type: ignore[arg-type]
            finish_detail=end.finish_reason,  # type: ignore[arg-type]
        )
        return ChatCompletionResponse(
            id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=self.model_name,
            decoding=params.decoding, choices=[choice], usage=_usage(end),
        )  # fmt: skip

    # --- streams -------------------------------------------------------------------------

    async def stream(self, request: CompletionRequest | ChatCompletionRequest) -> AsyncIterator[bytes]:
        """Validate and start the generation now; return the server-sent events to send."""
        _, _, events = await self._open(request)
        return ClosingBody(self._events(request, events))

    async def _events(
        self, request: CompletionRequest | ChatCompletionRequest, events: AsyncGenerator[DecodeEvent, None]
    ) -> AsyncGenerator[bytes, None]:
        chat = isinstance(request, ChatCompletionRequest)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        head = {
            "id": ident,
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
        }

        def chunk(text: str | None, finish: str | None = None, *, role: bool = False) -> bytes:
            reason = openai_finish_reason(finish) if finish else None
            if chat:
                delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
                if text is not None:
                    delta["content"] = text
                choice = {"index": 0, "delta": delta, "finish_reason": reason}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": reason, "logprobs": None}
            if finish:
                choice["finish_detail"] = finish
            return sse({**head, "choices": [choice]})

        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        async with aclosing(events):  # on any exit, a client gone included, the generation stops
            try:
                if chat:
                    yield chunk(None, role=True)
                end: StreamEnd | None = None
                async for event in events:
                    if isinstance(event, str):
                        yield chunk(event)
                    elif isinstance(event, StreamEnd):
                        end = event
                if end is None:
                    raise CounterpointError("the decoder's stream ended without a final event")
                yield chunk(None, end.finish_reason)
                if include_usage:
                    yield sse({**head, "choices": [], "usage": _usage(end).model_dump()})
                yield DONE
            except CounterpointError as exc:
                yield sse(exc.to_body())
            except Exception as exc:  # noqa: BLE001 - the response has started: report in-band
                logger.exception("generation failed mid-stream")
                yield sse(
                    {
                        "error": {
                            "type": "internal_error",
                            "message": f"generation failed ({type(exc).__name__})",
                        }
                    }
                )
