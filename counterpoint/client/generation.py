"""SDK methods for text generation: OpenAI completions and chat, whole or streamed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from counterpoint.client.streaming import GenerationStream
from counterpoint.client.transport import Transport
from counterpoint.schemas import ChatCompletionResponse, ChatMessage, CompletionResponse

Messages = str | Iterable[ChatMessage | Mapping[str, str]]
"""A conversation: one user message as a string, or ``{"role", "content"}`` mappings / `ChatMessage`s."""


def _messages(messages: Messages) -> list[dict[str, str]]:
    """A string is one user turn; otherwise ``{"role", "content"}`` mappings or `ChatMessage`s."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [m.model_dump() if isinstance(m, ChatMessage) else dict(m) for m in messages]


def _generation_body(params: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    body = {key: value for key, value in params.items() if value is not None}
    body.pop("stream", None)
    return {**body, **fields}


class GenerationAPI(Transport):
    """``/v1/completions`` and ``/v1/chat/completions``."""

    def complete(self, prompt: str, **params: Any) -> CompletionResponse:
        """Continue ``prompt`` (``POST /v1/completions``). ``params``: decoding, max_tokens, stop,
        seed, temperature, top_p, top_k, penalty_alpha, cd_alpha, amateur_layers, amateur_temperature."""
        body = _generation_body(params, prompt=prompt, stream=False)
        return CompletionResponse.model_validate(self._request("POST", "/v1/completions", json=body))

    def chat(self, messages: Messages, **params: Any) -> ChatCompletionResponse:
        """Answer a conversation (``POST /v1/chat/completions``); a string is one user message."""
        body = _generation_body(params, messages=_messages(messages), stream=False)
        return ChatCompletionResponse.model_validate(self._request("POST", "/v1/chat/completions", json=body))

    def stream_complete(self, prompt: str, **params: Any) -> GenerationStream:
        """Like `complete`, as an iterator of text deltas (server-sent events)."""
        body = _generation_body(params, prompt=prompt, stream=True, stream_options={"include_usage": True})
        return GenerationStream(self._http, self.url, "/v1/completions", body)

    def stream_chat(self, messages: Messages, **params: Any) -> GenerationStream:
        """Like `chat`, as an iterator of text deltas (server-sent events)."""
        body = _generation_body(
            params, messages=_messages(messages), stream=True, stream_options={"include_usage": True}
        )
        return GenerationStream(self._http, self.url, "/v1/chat/completions", body)
