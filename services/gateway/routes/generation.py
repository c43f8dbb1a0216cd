"""Text generation: OpenAI's completions and chat completions, answered whole or streamed as SSE."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from counterpoint.schemas import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
)
from counterpoint.services.gateway.auth import READ
from counterpoint.services.gateway.dependencies import GatewayServices, Services
from counterpoint.services.gateway.generation import SSE_HEADERS, GenerationService

router = APIRouter(tags=["generation"])

STREAM_OPENAPI = {
    "responses": {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
}

Body = TypeVar("Body", CompletionRequest, ChatCompletionRequest)


async def generate(
    services: GatewayServices, body: Body, answer: Callable[[GenerationService, Body], Awaitable[Any]]
) -> Any:
    """Stream ``body``'s generation as server-sent events if it asks to, else ``answer`` it whole."""
    service = services.generation()
    if body.stream:
        events = await service.stream(body)
        return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
    return await answer(service, body)


@router.post(
    "/v1/completions", response_model=CompletionResponse, openapi_extra=STREAM_OPENAPI, dependencies=[READ]
)
async def completions(body: CompletionRequest, services: Services) -> Any:
    return await generate(services, body, GenerationService.complete)


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    openapi_extra=STREAM_OPENAPI,
    dependencies=[READ],
)
async def chat_completions(body: ChatCompletionRequest, services: Services) -> Any:
    return await generate(services, body, GenerationService.chat)
