"""`GenerationStream`: the text deltas of a streamed completion, read from the gateway's server-sent events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from counterpoint.client.transport import raise_for_error, unreachable
from counterpoint.errors import ERROR_TYPES, CounterpointError, Unavailable, error_from_body
from counterpoint.schemas import CompletionUsage


class GenerationStream(Iterator[str]):
    """Text deltas of a streamed completion, read from the gateway's server-sent events.

    Once exhausted, ``finish_reason`` (OpenAI's "stop" | "length"), ``finish_detail``
    ("eos" | "stop" | "length"), ``usage`` and ``text`` (everything received) are set.
    Closing it early (or leaving a ``with`` block) disconnects, which stops the generation.
    """

    def __init__(self, http: httpx.Client, url: str, path: str, body: dict[str, Any]) -> None:
        self.finish_reason: str | None = None
        self.finish_detail: str | None = None
        self.usage: CompletionUsage | None = None
        self._parts: list[str] = []
        self._context = http.stream("POST", path, json=body)
        try:
            self._reply = self._context.__enter__()
        except httpx.TransportError as exc:
            raise unreachable(url, exc) from None
        if self._reply.status_code >= 400:
            self._reply.read()
            self.close()
            raise_for_error(self._reply)
        self._deltas = self._read()

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def _read(self) -> Iterator[str]:
        for line in self._reply.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                kind = ERROR_TYPES.get(str((event["error"] or {}).get("type")), CounterpointError)
                raise error_from_body(kind.status_code, event)
            if event.get("usage"):
                self.usage = CompletionUsage.model_validate(event["usage"])
            for choice in event.get("choices", []):
                text = choice["text"] if "text" in choice else (choice.get("delta") or {}).get("content")
                if choice.get("finish_reason"):
                    self.finish_reason = choice["finish_reason"]
                    self.finish_detail = choice.get("finish_detail")
                if text:
                    self._parts.append(text)
                    yield text
        raise Unavailable("the generation stream ended without [DONE] (the gateway went away?)")

    def __next__(self) -> str:
        try:
            return next(self._deltas)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop reading; the gateway sees the disconnect and stops generating."""
        self._context.__exit__(None, None, None)

    def __enter__(self) -> GenerationStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
