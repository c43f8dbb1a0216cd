"""The gateway's error bodies and exception handlers.

Every error leaves as ``{"error": {"type": ..., "message": ...}}``: a 4xx status for bad input; an
unexpected failure is logged and answered with a 500 that carries no traceback; a part that is down
or restarting (a dead Serve replica, an unreachable database) is a 503 with ``Retry-After``.

Imports the counterpoint base (errors), `auth` (to check a key before answering a body error) and
`services.outages`; never the routes.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from counterpoint.errors import CounterpointError, Unavailable
from counterpoint.services.gateway.auth import Guard, route_scope
from counterpoint.services.outages import as_unavailable, outage_types

logger = logging.getLogger("counterpoint.gateway")


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def error_body_response(err: CounterpointError) -> JSONResponse:
    """The response carrying ``err``, with its headers (``WWW-Authenticate``, ``Retry-After``)."""
    return error_response(err.status_code, err.type, err.message, err.headers)


def describe_validation(errors: list[Any]) -> str:
    """One line naming the first five problems pydantic found (and how many more there are)."""
    parts = []
    for err in errors[:5]:
        if err.get("type") == "json_invalid":  # loc is ("body", character offset)
            reason = (err.get("ctx") or {}).get("error", "JSON decode error")
            parts.append(f"body is not valid JSON ({reason} at character {err.get('loc', ('', '?'))[-1]})")
            continue
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def authenticate_first(request: Request) -> JSONResponse | None:
    """The 401/403 (or 429) owed to a request whose body FastAPI could not parse, else None.

    FastAPI reads and parses a JSON body before the route's dependencies run, so a malformed body
    would be answered 422/400 before the key is looked at: a caller without a valid key would learn
    the route's body rules and make the gateway parse its body. The handlers of those errors call
    this first, with the scope the route's `requires` dependency asks for.
    """
    guard: Guard | None = getattr(request.app.state, "guard", None)
    scope = route_scope(request.scope.get("route"))
    if guard is None or not guard.enabled or scope is None:
        return None
    try:
        await guard.check(request, scope)
    except CounterpointError as err:
        return error_body_response(err)
    return None


async def _counterpoint(_: Request, exc: CounterpointError) -> JSONResponse:
    return error_body_response(exc)


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(err.get("type") == "json_invalid" for err in errors):  # raised before the auth dependency
        denied = await authenticate_first(request)
        if denied is not None:
            return denied
    return error_response(422, "invalid_request", describe_validation(errors))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc.__cause__, CounterpointError):  # FastAPI wraps errors raised reading the body
        return error_response(exc.__cause__.status_code, exc.__cause__.type, exc.__cause__.message)
    if exc.status_code == 400:  # FastAPI could not parse the body: before the auth dependency ran
        denied = await authenticate_first(request)
        if denied is not None:
            return denied
    kind = "not_found" if exc.status_code == 404 else "http_error"
    return error_response(exc.status_code, kind, str(exc.detail))


async def _outage(_: Request, exc: Exception) -> JSONResponse:
    """A dead or restarting replica, an unreachable database: 503 with Retry-After, never a 500."""
    err = as_unavailable(exc) or Unavailable(f"a part of the platform is unavailable ({type(exc).__name__})")
    logger.warning("answering 503: %s", err.message)
    return error_body_response(err)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    cause = getattr(exc, "cause", None)  # Ray wraps errors raised in other replicas
    if isinstance(cause, CounterpointError):
        return error_body_response(cause)
    if as_unavailable(exc) is not None:  # an outage wrapped in another error
        return await _outage(request, exc)
    logger.exception("unhandled error")
    return error_response(500, "internal_error", f"internal error ({type(exc).__name__}); see the logs")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above (Starlette picks the one for the nearest class in the error's MRO)."""
    app.add_exception_handler(CounterpointError, _counterpoint)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    for outage in outage_types():
        app.add_exception_handler(outage, _outage)
    app.add_exception_handler(Exception, _unexpected)
