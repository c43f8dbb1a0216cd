"""The HTTP layer under every SDK method: one ``httpx`` client, gateway errors raised as their classes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

import httpx

from counterpoint.errors import Unavailable, error_from_body
from counterpoint.settings import get_settings

Progress = Callable[[int], None]
"""Called with how many items (documents, queries) or bytes were just done."""

# Backups move whole collections: no read/write timeout (the gateway snapshots before the first byte).
# (connect, read, write, pool) as a plain tuple: httpx takes it, and so does httpx2, which Starlette's
# TestClient (the SDK's transport in the unit tests) is built on since Starlette 1.10.
BACKUP_TIMEOUT = (30.0, None, None, 30.0)


def unreachable(url: str, exc: httpx.TransportError) -> Unavailable:
    """The error for a gateway that does not answer at all."""
    return Unavailable(
        f"cannot reach the gateway at {url} ({type(exc).__name__}); is `counterpoint up` running?"
    )


def raise_for_error(reply: httpx.Response) -> None:
    """Raise the `counterpoint.errors` class of a 4xx/5xx reply (already read) from its error body."""
    if reply.status_code >= 400:
        raise error_from_body(reply.status_code, json_or_none(reply))


def json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


class Transport:
    """One gateway's address, API key and connection pool; `_request` sends and decodes."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = 120.0) -> None:
        """``api_key`` defaults to the settings' (COUNTERPOINT_API_KEY, else the local admin key file)."""
        settings = get_settings()
        self.url = (url or settings.gateway_url).rstrip("/")
        key = api_key if api_key is not None else settings.client_api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            reply = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        raise_for_error(reply)
        return json_or_none(reply)
