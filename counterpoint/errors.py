"""Errors that cross the API boundary: each carries an HTTP status and a stable ``type``.

The gateway turns them into ``{"error": {"type": ..., "message": ...}}``; the SDK turns
such bodies back into the same classes, so callers catch one hierarchy everywhere.
"""

from __future__ import annotations


class CounterpointError(Exception):
    """Base class: a problem the caller can read and act on."""

    status_code: int = 500
    type: str = "internal_error"
    retry_after: int | None = None  # seconds; sent as Retry-After (429, 503)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, dict[str, str]]:
        return {"error": {"type": self.type, "message": self.message}}

    @property
    def headers(self) -> dict[str, str]:
        """HTTP headers the gateway sends with this error (``WWW-Authenticate``, ``Retry-After``)."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class InvalidInput(CounterpointError):
    """The request is well-formed JSON but its content is wrong."""

    status_code = 422
    type = "invalid_request"


class NotFound(CounterpointError):
    """A named collection, model or job does not exist."""

    status_code = 404
    type = "not_found"


class Conflict(CounterpointError):
    """The resource already exists or is in a state that forbids the call."""

    status_code = 409
    type = "conflict"


class LimitExceeded(CounterpointError):
    """The request exceeds a configured limit (batch size, top_k, body size)."""

    status_code = 413
    type = "limit_exceeded"


class Unauthorized(CounterpointError):
    """No API key, or one the gateway does not know (or that was revoked)."""

    status_code = 401
    type = "unauthorized"

    @property
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(CounterpointError):
    """The API key is valid but lacks the scope the route needs."""

    status_code = 403
    type = "forbidden"


class RateLimited(CounterpointError):
    """Too many requests for this key; retry after ``retry_after`` seconds."""

    status_code = 429
    type = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(CounterpointError):
    """A part of the platform is down or still starting; retry later."""

    status_code = 503
    type = "unavailable"
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
