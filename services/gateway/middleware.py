"""ASGI middleware of the gateway: the request body size limit, and the header naming the replica.

Imports the counterpoint base (errors) and `gateway.errors` (the error body); never the routes.
"""

from __future__ import annotations

from typing import Any

from counterpoint.errors import LimitExceeded
from counterpoint.services.gateway.errors import error_body_response


class BodySizeLimit:
    """ASGI middleware: a body over ``max_bytes`` gets a 413 naming the limit.

    ``Content-Length`` is checked before the route runs; a chunked body is counted as it arrives.
    ``overrides`` maps exact paths to (limit, setting name): a backup restore may send gigabytes."""

    def __init__(self, app: Any, max_bytes: int, overrides: dict[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    def error(self, limit: int | None = None, setting: str = "max_body_bytes") -> LimitExceeded:
        return LimitExceeded(
            f"request body exceeds {limit or self.max_bytes} bytes (setting {setting}): send smaller batches"
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.overrides.get(scope.get("path", ""), (self.max_bytes, "max_body_bytes"))
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await error_body_response(self.error(limit, setting))(scope, receive, send)
            return
        seen = 0

        async def counted() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self.error(limit, setting)  # the route's error handler answers 413
            return message

        await self.app(scope, counted, send)


REPLICA_HEADER = "x-counterpoint-replica"


class ReplicaHeader:
    """ASGI middleware: every response names the gateway replica that answered (``REPLICA_HEADER``), so
    with several replicas a user (or a test) sees where a request went."""

    def __init__(self, app: Any, replica: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, named)
