"""Errors that cross the API boundary: each carries an HTTP status and a stable ``type``.

The gateway turns them into ``{"error": {"type": ..., "message": ...}}``; the SDK turns
such bodies back into the same classes, so callers catch one hierarchy everywhere.
"""

from __future__ import annotations

from typing import Any


class CounterpointError(Exception):
    """Base class: a problem the caller can read and act on.

    A subclass names its HTTP status and stable type in its header:
    ``class NotFound(CounterpointError, status_code=404, kind="not_found")``."""

    status_code: int = 500
    type: str = "internal_error"
    retry_after: int | None = None  # seconds; sent as Retry-After (429, 503)

    def __init_subclass__(
        cls, *, status_code: int | None = None, kind: str | None = None, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if kind is not None:
            cls.type = kind

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, dict[str, str]]:
        return {"error": {"type": self.type, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the gateway sends with this error (``WWW-Authenticate``, ``Retry-After``)."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class InvalidInput(CounterpointError, status_code=422, kind="invalid_request"):
    """The request is well-formed JSON but its content is wrong."""


class NotFound(CounterpointError, status_code=404, kind="not_found"):
    """A named collection, model or job does not exist."""


class Conflict(CounterpointError, status_code=409, kind="conflict"):
    """The resource already exists or is in a state that forbids the call."""


class LimitExceeded(CounterpointError, status_code=413, kind="limit_exceeded"):
    """The request exceeds a configured limit (batch size, top_k, body size)."""


class Unauthorized(CounterpointError, status_code=401, kind="unauthorized"):
    """No API key, or one the gateway does not know (or that was revoked)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(CounterpointError, status_code=403, kind="forbidden"):
    """The API key is valid but lacks the scope the route needs."""


class RateLimited(CounterpointError, status_code=429, kind="rate_limited"):
    """Too many requests for this key; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(CounterpointError, status_code=503, kind="unavailable"):
    """A part of the platform is down or still starting; retry later."""

    retry_after = 1


ERROR_TYPES: dict[str, type[CounterpointError]] = {
    cls.type: cls
    for cls in (
        InvalidInput,
        NotFound,
        Conflict,
        LimitExceeded,
        Unauthorized,
        Forbidden,
        RateLimited,
        Unavailable,
    )
}


def error_from_body(status_code: int, body: object) -> CounterpointError:
    """Rebuild the error a gateway response describes (used by the SDK)."""
    message, kind = f"HTTP {status_code}", ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message", message))
        kind = str(body["error"].get("type", ""))
    cls = ERROR_TYPES.get(kind, CounterpointError)
    err = cls(message)
    err.status_code = status_code
    return err
