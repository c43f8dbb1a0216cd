"""Which failures of another part mean "down or restarting, retry shortly" (HTTP 503).

A Serve replica that died or is restarting surfaces in the gateway as Ray's actor errors
(``ActorDiedError``, ``ActorUnavailableError``, ...) or Serve's (``BackPressureError``,
``DeploymentUnavailableError``); a registry database that went away surfaces as SQLAlchemy's
``OperationalError`` / ``InterfaceError`` or a pool timeout. None of these is the caller's fault
and all of them pass: :func:`as_unavailable` turns them into `Unavailable` (503 with
``Retry-After``) instead of a 500, naming the part when the caller knows it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from counterpoint.errors import Unavailable


@functools.cache
def ray_outage_types() -> tuple[type[BaseException], ...]:
    """Ray and Ray Serve errors of a replica, worker or node that is gone or overloaded."""
    import ray.exceptions as rex
    import ray.serve.exceptions as sex

    return (
        rex.RayActorError,  # ActorDiedError, ActorUnavailableError
        rex.WorkerCrashedError,
        rex.NodeDiedError,
        rex.ObjectLostError,  # OwnerDiedError
        rex.ActorUnschedulableError,
        rex.LocalRayletDiedError,
        rex.GetTimeoutError,
        sex.BackPressureError,
        sex.DeploymentUnavailableError,
    )


@functools.cache
def database_outage_types() -> tuple[type[BaseException], ...]:
    """SQLAlchemy errors of a database that cannot be reached or answered too slowly."""
    import sqlalchemy.exc as sqlexc

    return (sqlexc.OperationalError, sqlexc.InterfaceError, sqlexc.TimeoutError)


def outage_types() -> tuple[type[BaseException], ...]:
    return ray_outage_types() + database_outage_types()


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it: ``__cause__``/``__context__`` and Ray's ``cause`` attribute."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "cause", None)
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__ or current.__context__
        current = nxt


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def as_unavailable(exc: BaseException, part: str | None = None) -> Unavailable | None:
    """The `Unavailable` error ``exc`` amounts to, or None when it is not an outage."""
    for err in _chain(exc):
        if isinstance(err, Unavailable):
            return err
        if isinstance(err, ray_outage_types()):
            what = part or "a model service"
            return Unavailable(
                f"{what} is restarting or overloaded ({type(err).__name__}); retry in a moment"
            )
        if isinstance(err, database_outage_types()):
            what = part or "the registry database"
            detail = _first_line(getattr(err, "orig", None) or err)
            return Unavailable(f"{what} is not reachable ({type(err).__name__}: {detail}); retry in a moment")
    return None
