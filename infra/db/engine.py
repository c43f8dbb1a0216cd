"""Engines, sessions and start-up migrations for the registry database.

``make_engine`` knows the two supported backends: a SQLite file (local mode; WAL and a busy
timeout so several processes can read while one writes) and PostgreSQL through psycopg 3.
``migrate`` applies the Alembic migrations shipped in this package in one transaction,
serialised across processes (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL),
so every service can call it at start-up.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option naming how a SQLite transaction starts: "DEFERRED" (default) or "IMMEDIATE".
# Write transactions must start IMMEDIATE: a deferred one that reads first and writes later
# fails at once with "database is locked" when another writer committed in between (WAL
# snapshots cannot be upgraded), whatever the busy timeout. PostgreSQL ignores the option.
SQLITE_BEGIN = "sqlite_begin"
WRITE_OPTIONS: dict[str, Any] = {SQLITE_BEGIN: "IMMEDIATE"}
# Key of the PostgreSQL advisory lock that serialises migrations (any constant bigint).
_PG_MIGRATION_LOCK = 0x436F756E746572  # "Counter"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` / ``postgres://`` URLs get the psycopg 3 driver.

    SQLAlchemy's default PostgreSQL driver is psycopg2, which Counterpoint does not install.
    """
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite_memory(url: URL) -> bool:
    """Whether ``url`` is an in-memory SQLite database (lives only as long as its connection)."""
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL journaling (persistent; a no-op once done).

    The switch needs an exclusive lock and SQLite answers "database is locked" at once instead
    of waiting on the busy timeout, which happens when several processes open a new database
    together; so retry until the timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings the registry relies on.

    SQLite file: the parent directory is created, every connection gets WAL journaling, a
    busy timeout and foreign keys, and SQLAlchemy (not the sqlite3 module) emits BEGIN, so
    DDL is transactional and ``WRITE_OPTIONS`` can ask for ``BEGIN IMMEDIATE``. In-memory
    SQLite: one shared connection (``StaticPool``), otherwise each connection would see its
    own empty database. PostgreSQL: pre-ping, so connections dropped by a server restart are
    replaced instead of failing a request.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(parsed, **kwargs)

    memory = is_sqlite_memory(parsed)
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    else:
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    engine = create_engine(parsed, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 module: stop emitting BEGIN itself
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if not memory:
                _enable_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, far fewer fsyncs
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(connection: Connection) -> None:
        mode = str(connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")).upper()
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"{SQLITE_BEGIN} must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (values are copied out anyway)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` built in code: no ini file needed at run time."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        rendered = normalize_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))  # configparser escaping
    return config


def migrate(url: str | URL | Engine) -> None:
    """Upgrade the database at ``url`` to the newest schema; a no-op when it is current.

    Safe to call from several processes at once. Accepts an ``Engine`` too, which is the only
    way to migrate an in-memory SQLite database (a new engine would see a fresh one).
    """
    own_engine = not isinstance(url, Engine)
    engine = url if isinstance(url, Engine) else make_engine(url)
    config = alembic_config(engine.url)
    try:
        # One transaction for the whole upgrade (SQLite and PostgreSQL both have transactional
        # DDL here); a second migrator waits for the write lock, then finds nothing to do.
        with engine.execution_options(**WRITE_OPTIONS).begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if own_engine:
            engine.dispose()
