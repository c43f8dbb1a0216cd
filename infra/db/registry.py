"""The registry repository: every read and write of the registry database goes through here.

Methods open a short transaction each and return frozen records (plain dataclasses), never
ORM rows, so no session or lazy load leaks to callers and records can cross threads and
Ray processes freely. Missing rows raise ``NotFound``; duplicate names raise ``Conflict``.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from counterpoint.errors import Conflict, InvalidInput, NotFound

from .engine import WRITE_OPTIONS, make_engine, make_session_factory, migrate
from .models import (
    COLLECTION_STATUSES,
    JOB_STATUSES,
    JOB_TERMINAL_STATUSES,
    MODEL_KINDS,
    ApiKeyRow,
    CollectionRow,
    JobRow,
    ModelRow,
    utcnow,
)

if TYPE_CHECKING:
    from counterpoint.settings import Settings

# --- records: what callers get back ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    name: str
    physical_name: str
    model: str
    dimensions: int
    distance: str
    payload_indexes: dict[str, str]
    status: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    name: str
    kind: str
    status: str
    config: dict[str, Any]
    ray_job_id: str | None
    mlflow_run_id: str | None
    error: str | None
    metrics: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal status (succeeded, failed or cancelled)."""
        return self.status in JOB_TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class ModelRecord:
    name: str
    uri: str
    kind: str
    dimensions: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    name: str
    prefix: str
    key_hash: str = field(repr=False)
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _collection(row: CollectionRow) -> CollectionRecord:
    return CollectionRecord(
        name=row.name,
        physical_name=row.physical_name,
        model=row.model,
        dimensions=row.dimensions,
        distance=row.distance,
        payload_indexes=dict(row.payload_indexes),
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _job(row: JobRow) -> JobRecord:
    return JobRecord(
        id=row.id,
        name=row.name,
        kind=row.kind,
        status=row.status,
        config=dict(row.config),
        ray_job_id=row.ray_job_id,
        mlflow_run_id=row.mlflow_run_id,
        error=row.error,
        metrics=dict(row.metrics),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _model(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        name=row.name, uri=row.uri, kind=row.kind, dimensions=row.dimensions, created_at=row.created_at
    )


def _api_key(row: ApiKeyRow) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        key_hash=row.key_hash,
        scopes=list(row.scopes),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class _Unset(enum.Enum):
    """Marks "leave this field as it is" where ``None`` is a legal new value."""

    UNSET = enum.auto()


UNSET = _Unset.UNSET


def _check_choice(what: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise InvalidInput(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


# --- the repository -------------------------------------------------------------------------


class Registry:
    """Collections, jobs, models and API keys, stored in SQLite or PostgreSQL."""

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

    # --- collections ------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        *,
        model: str,
        dimensions: int,
        distance: str = "cosine",
        payload_indexes: Mapping[str, str] | None = None,
        physical_name: str | None = None,
        status: str = "ready",
    ) -> CollectionRecord:
        """Register a collection; ``physical_name`` defaults to ``name``. Raises ``Conflict``."""
        _check_choice("collection status", status, COLLECTION_STATUSES)
        row = CollectionRow(
            name=name,
            physical_name=physical_name or name,
            model=model,
            dimensions=dimensions,
            distance=distance,
            payload_indexes=dict(payload_indexes or {}),
            status=status,
        )
        try:
            with self._tx(write=True) as session:
                if session.scalar(select(CollectionRow.id).where(CollectionRow.name == name)) is not None:
                    raise Conflict(f"collection {name!r} already exists")
                session.add(row)
                session.flush()
                return _collection(row)
        except IntegrityError as exc:  # lost a race with a concurrent create
            raise Conflict(f"collection {name!r} already exists") from exc

    def get_collection(self, name: str) -> CollectionRecord:
        with self._tx() as session:
            return _collection(self._collection_row(session, name))

    def list_collections(self) -> list[CollectionRecord]:
        with self._tx() as session:
            rows = session.scalars(select(CollectionRow).order_by(CollectionRow.name))
            return [_collection(row) for row in rows]

    def delete_collection(self, name: str) -> CollectionRecord:
        """Remove the entry and return it (its ``physical_name`` tells what to drop)."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name)
            record = _collection(row)
            session.delete(row)
            return record

    def set_collection_status(self, name: str, status: str) -> CollectionRecord:
        _check_choice("collection status", status, COLLECTION_STATUSES)
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            row.status = status
            session.flush()
            return _collection(row)

    def swap_physical(self, name: str, new_physical: str, *, expected: str | None = None) -> str:
        """Point ``name`` at ``new_physical`` in one update; return the previous physical name.

        With ``expected``, the swap happens only if the current physical name is still
        ``expected`` (compare-and-swap), otherwise ``Conflict``: two re-indexes racing
        cannot silently overwrite each other.
        """
        with self._tx(write=True) as session:  # row locked: FOR UPDATE / SQLite write lock
            row = self._collection_row(session, name, for_update=True)
            old = row.physical_name
            if expected is not None and old != expected:
                raise Conflict(f"collection {name!r} points at {old!r}, not {expected!r}; not swapped")
            row.physical_name = new_physical
            row.updated_at = utcnow()
            session.flush()
            return old

    def switch_model(
        self, name: str, *, physical_name: str, model: str, dimensions: int, expected: str
    ) -> str:
        """The end of a re-index: point ``name`` at its new physical collection, model and size, and
        mark it ready, in one update; returns the previous physical name. ``Conflict`` unless the
        collection still points at ``expected`` (nothing else swapped it meanwhile)."""
        return self._repoint(
            name, expected, "swapped", physical_name=physical_name, model=model, dimensions=dimensions
        )

    def replace_collection(
        self,
        name: str,
        *,
        physical_name: str,
        model: str,
        dimensions: int,
        distance: str,
        payload_indexes: Mapping[str, str],
        expected: str,
    ) -> str:
        """The end of a restore over an existing collection: every field from the backup, status ready,
        in one update; returns the previous physical name. ``Conflict`` unless it still points at
        ``expected``."""
        return self._repoint(
            name,
            expected,
            "replaced",
            physical_name=physical_name,
            model=model,
            dimensions=dimensions,
            distance=distance,
            payload_indexes=dict(payload_indexes),
        )

    def _repoint(self, name: str, expected: str, action: str, **fields: Any) -> str:
        """Set ``fields`` and status ready in one update if ``name`` still points at ``expected``
        (compare-and-swap on the physical name); returns the previous physical name."""
        with self._tx(write=True) as session:
            row = self._collection_row(session, name, for_update=True)
            old = row.physical_name
            if old != expected:
                raise Conflict(f"collection {name!r} points at {old!r}, not {expected!r}; not {action}")
            for field_name, value in fields.items():
                setattr(row, field_name, value)
            row.status = "ready"
            row.updated_at = utcnow()
            session.flush()
            return old

    @staticmethod
    def _collection_row(session: Session, name: str, *, for_update: bool = False) -> CollectionRow:
        query = select(CollectionRow).where(CollectionRow.name == name)
        if for_update:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"collection {name!r} does not exist")
        return row

    # --- jobs -------------------------------------------------------------------------------

    def create_job(
        self,
        kind: str,
        config: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        job_id: str | None = None,
        status: str = "pending",
    ) -> JobRecord:
        """Record a new job (``pending`` by default); the id is a fresh UUID unless given."""
        _check_choice("job status", status, JOB_STATUSES)
        job_id = job_id or str(uuid.uuid4())
        name = name or f"{kind}-{job_id[:8]}"
        row = JobRow(id=job_id, name=name, kind=kind, status=status, config=dict(config or {}))
        try:
            with self._tx(write=True) as session:
                session.add(row)
                session.flush()
                return _job(row)
        except IntegrityError as exc:
            raise Conflict(f"job {job_id!r} already exists") from exc

    def get_job(self, job_id: str) -> JobRecord:
        with self._tx() as session:
            return _job(self._job_row(session, job_id))

    def list_jobs(
        self, *, status: str | Sequence[str] | None = None, kind: str | None = None, limit: int | None = None
    ) -> list[JobRecord]:
        """Jobs, newest first; optionally only some statuses, one kind, the ``limit`` newest."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            query = query.where(JobRow.status.in_(statuses))
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        with self._tx() as session:
            return [_job(row) for row in session.scalars(query)]

    def update_job(
        self,
        job_id: str,
        *,
        status: str | None = None,
        name: str | None = None,
        ray_job_id: str | None | _Unset = UNSET,
        mlflow_run_id: str | None | _Unset = UNSET,
        error: str | None | _Unset = UNSET,
        metrics: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """Change the given fields (``metrics`` replaces the stored dict); return the job.

        A finished job (succeeded, failed, cancelled) keeps its status: moving it elsewhere
        raises ``Conflict``, e.g. cancelling a job that has just succeeded.
        """
        if status is not None:
            _check_choice("job status", status, JOB_STATUSES)
        with self._tx(write=True) as session:
            row = self._job_row(session, job_id, for_update=True)
            if status is not None and status != row.status:
                if row.status in JOB_TERMINAL_STATUSES:
                    raise Conflict(f"job {job_id!r} already {row.status}; cannot move it to {status!r}")
                row.status = status
            if name is not None:
                row.name = name
            if ray_job_id is not UNSET:
                row.ray_job_id = ray_job_id
            if mlflow_run_id is not UNSET:
                row.mlflow_run_id = mlflow_run_id
            if error is not UNSET:
                row.error = error
            if metrics is not None:
                row.metrics = dict(metrics)
            row.updated_at = utcnow()
            session.flush()
            return _job(row)

    def reopen_job(self, job_id: str) -> JobRecord:
        """Move a failed or cancelled job back to ``pending`` so it can resume from its checkpoints.

        The one way out of a terminal status; a succeeded job stays succeeded (``Conflict``), and so
        does a job that is still pending or running.
        """
        with self._tx(write=True) as session:
            row = self._job_row(session, job_id, for_update=True)
            if row.status not in ("failed", "cancelled"):
                raise Conflict(f"job {job_id!r} is {row.status}; only a failed or cancelled job can resume")
            row.status = "pending"
            row.error = None
            row.updated_at = utcnow()
            session.flush()
            return _job(row)

    @staticmethod
    def _job_row(session: Session, job_id: str, *, for_update: bool = False) -> JobRow:
        query = select(JobRow).where(JobRow.id == job_id)
        if for_update:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"job {job_id!r} does not exist")
        return row

    # --- models -----------------------------------------------------------------------------

    def register_model(
        self, name: str, uri: str, *, kind: str = "embedding", dimensions: int | None = None
    ) -> ModelRecord:
        """Register a servable model under a unique name. Raises ``Conflict``."""
        _check_choice("model kind", kind, MODEL_KINDS)
        row = ModelRow(name=name, uri=uri, kind=kind, dimensions=dimensions)
        try:
            with self._tx(write=True) as session:
                if session.scalar(select(ModelRow.id).where(ModelRow.name == name)) is not None:
                    raise Conflict(f"model {name!r} is already registered")
                session.add(row)
                session.flush()
                return _model(row)
        except IntegrityError as exc:
            raise Conflict(f"model {name!r} is already registered") from exc

    def get_model(self, name: str) -> ModelRecord:
        with self._tx() as session:
            row = session.scalar(select(ModelRow).where(ModelRow.name == name))
            if row is None:
                raise NotFound(f"model {name!r} is not registered")
            return _model(row)

    def list_models(self, *, kind: str | None = None) -> list[ModelRecord]:
        query = select(ModelRow).order_by(ModelRow.name)
        if kind is not None:
            query = query.where(ModelRow.kind == kind)
        with self._tx() as session:
            return [_model(row) for row in session.scalars(query)]

    # --- API keys ---------------------------------------------------------------------------

    def create_api_key(
        self, name: str, *, prefix: str, key_hash: str, scopes: Sequence[str] = ()
    ) -> ApiKeyRecord:
        """Store a key as given (the caller hashes the secret). ``prefix`` must be unique."""
        row = ApiKeyRow(
            id=str(uuid.uuid4()), name=name, prefix=prefix, key_hash=key_hash, scopes=list(scopes)
        )
        try:
            with self._tx(write=True) as session:
                if session.scalar(select(ApiKeyRow.id).where(ApiKeyRow.prefix == prefix)) is not None:
                    raise Conflict(f"an API key with prefix {prefix!r} already exists")
                session.add(row)
                session.flush()
                return _api_key(row)
        except IntegrityError as exc:
            raise Conflict(f"an API key with prefix {prefix!r} already exists") from exc

    def get_api_key_by_prefix(self, prefix: str) -> ApiKeyRecord:
        """The key with this prefix, revoked or not (check ``active``)."""
        with self._tx() as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
            if row is None:
                raise NotFound(f"no API key with prefix {prefix!r}")
            return _api_key(row)

    def list_api_keys(self, *, include_revoked: bool = True) -> list[ApiKeyRecord]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        with self._tx() as session:
            return [_api_key(row) for row in session.scalars(query)]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked; revoking twice keeps the first revocation time."""
        with self._tx(write=True) as session:
            row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.id == key_id).with_for_update())
            if row is None:
                raise NotFound(f"API key {key_id!r} does not exist")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                session.flush()
            return _api_key(row)
