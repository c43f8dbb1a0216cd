"""The HTTP layer under every SDK method: one ``httpx`` client, gateway errors raised as their classes."""

from __future__ import annotations

import time
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

MAX_RETRY_WAIT_S = 10.0
"""The longest Retry-After a rate-limited request waits out before it is tried again."""


def unreachable(url: str, exc: httpx.TransportError) -> Unavailable:
    """The error for a gateway that does not answer at all."""
    return Unavailable(
        f"cannot reach the gateway at {url} ({type(exc).__name__}); is `counterpoint up` running?"
    )


def raise_for_error(reply: httpx.Response) -> None:
    """Raise the `counterpoint.errors` class of a 4xx/5xx reply (already read) from its error body."""
    if reply.status_code >= 400:
        raise error_from_body(reply.status_code, json_or_none(reply))


def retry_after(reply: httpx.Response) -> float:
    """Seconds a 429 asks the caller to wait (its Retry-After, 1 s if absent), at most `MAX_RETRY_WAIT_S`."""
    try:
        wait = float(reply.headers.get("retry-after", 1))
    except ValueError:
        wait = 1.0
    return min(MAX_RETRY_WAIT_S, max(0.0, wait))


def json_or_none(reply: httpx.Response) -> Any:
    try:
        return reply.json()
    except ValueError:
        return None


class Transport:
    """One gateway's address, API key and connection pool; `_request` sends and decodes."""

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        rate_limit_retries: int = 3,
    ) -> None:
        """``api_key`` defaults to the settings' (COUNTERPOINT_API_KEY, else the local admin key file).

        A request answered 429 (the key's rate limit) waits out its Retry-After (at most
        `MAX_RETRY_WAIT_S`) and is sent again, ``rate_limit_retries`` times at most: the gateway
        refuses a limited request before doing any of it, so sending it again is safe. A streamed
        body cannot be sent twice; its 429 is raised at once.
        """
        settings = get_settings()
        self.rate_limit_retries = rate_limit_retries
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
        content = kwargs.get("content")
        retries = self.rate_limit_retries if content is None or isinstance(content, bytes | str) else 0
        for attempt in range(retries + 1):
            try:
                reply = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise unreachable(self.url, exc) from None
            if reply.status_code == 429 and attempt < retries:
                time.sleep(retry_after(reply))
                continue
            raise_for_error(reply)
            return json_or_none(reply)
        raise AssertionError("unreachable")  # the last attempt returns or raises
