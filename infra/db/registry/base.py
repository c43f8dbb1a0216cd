"""The registry's plumbing: opening the database, one transaction per call, shared row helpers.

:class:`RegistryBase` is what every table's part of :class:`~counterpoint.infra.db.registry.Registry`
builds on: ``_tx`` (a short transaction), ``_insert`` (add a row, ``Conflict`` on a duplicate),
``_one`` (a row or ``NotFound``), ``_get`` and ``_list`` (records).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self, TypeVar

from sqlalchemy import Engine, Select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from counterpoint.errors import Conflict, InvalidInput, NotFound
from counterpoint.infra.db.engine import WRITE_OPTIONS, make_engine, make_session_factory, migrate

if TYPE_CHECKING:
    from counterpoint.settings import Settings

Row = TypeVar("Row")
Record = TypeVar("Record")


class _Unset(enum.Enum):
    """Marks "leave this field as it is" where ``None`` is a legal new value."""

    UNSET = enum.auto()


UNSET = _Unset.UNSET


def check_choice(what: str, value: str, allowed: Iterable[str]) -> None:
    """``InvalidInput`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


class RegistryBase:
    """Opens the registry database and runs each call in its own short transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    @classmethod
    def from_url(cls, url: str, **engine_kwargs: Any) -> Self:
        """Migrate the database at ``url`` to the newest schema, then open it.

        SQLite: the parent directory is created; WAL and a busy timeout are on.
        """
        engine = make_engine(url, **engine_kwargs)
        migrate(engine)
        return cls(make_session_factory(engine))

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Self:
        """The registry at ``settings.db_url`` (default: the process-wide settings)."""
        if settings is None:
            from counterpoint.settings import get_settings

            settings = get_settings()
        return cls.from_url(settings.db_url)

    @property
    def engine(self) -> Engine:
        bind = self._sessions.kw["bind"]
        assert isinstance(bind, Engine)
        return bind

    def close(self) -> None:
        """Close every pooled connection; the registry may still be used (it reconnects)."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on error.

        ``write`` takes SQLite's write lock up front (``BEGIN IMMEDIATE``), so read-then-write
        transactions of several processes queue on the busy timeout instead of failing.
        """
        session = self._sessions(execution_options=WRITE_OPTIONS if write else {})
        with session, session.begin():
            yield session

    def _insert(
        self, row: Row, to_record: Callable[[Row], Record], conflict: str, taken: Select[Any] | None = None
    ) -> Record:
        """Add ``row`` and return its record; ``Conflict(conflict)`` when ``taken`` finds a row
        already, or when a concurrent insert wins the race (the unique constraint fails)."""
        try:
            with self._tx(write=True) as session:
                if taken is not None and session.scalar(taken) is not None:
                    raise Conflict(conflict)
                session.add(row)
                session.flush()
                return to_record(row)
        except IntegrityError as exc:
            raise Conflict(conflict) from exc

    @staticmethod
    def _one(session: Session, query: Select[Any], missing: str, *, for_update: bool = False) -> Any:
        """The one row ``query`` selects (locked with ``for_update``), or ``NotFound(missing)``."""
        if for_update:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(missing)
        return row

    def _get(self, query: Select[Any], to_record: Callable[[Any], Record], missing: str) -> Record:
        """The record of the one row ``query`` selects, or ``NotFound(missing)``."""
        with self._tx() as session:
            return to_record(self._one(session, query, missing))

    def _list(self, query: Select[Any], to_record: Callable[[Any], Record]) -> list[Record]:
        """The records of every row ``query`` selects, in its order."""
        with self._tx() as session:
            return [to_record(row) for row in session.scalars(query)]
