"""A logical dump of the registry: every row of every table as JSON, and its loading into a new database.

Portable where ``pg_dump`` or a copy of the SQLite file is not: a dump taken on SQLite loads into
PostgreSQL and back. It carries the schema revision (Alembic) it was taken at; loading migrates an
empty database to that revision, inserts the rows in one transaction and then migrates to the newest
schema, so a dump stays loadable after later releases add migrations. Loading refuses a database
that already holds rows: a restore never merges into, or overwrites, a live registry.

API keys travel as their argon2 hashes (never the keys), so restored keys keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Integer, Table, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from counterpoint import __version__
from counterpoint.errors import Conflict, InvalidInput

from .engine import WRITE_OPTIONS, alembic_config, make_engine
from .models import Base, UTCDateTime, utcnow

FORMAT = "counterpoint-registry-dump"
FORMAT_VERSION = 1


def schema_revisions() -> list[str]:
    """Known schema revisions, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _tables() -> list[Table]:
    return list(Base.metadata.sorted_tables)


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def dump_registry(engine: Engine) -> dict[str, Any]:
    """Every row of the registry at ``engine``, read in one transaction (a consistent picture)."""
    options: dict[str, Any] = (
        {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    )
    with engine.connect().execution_options(**options) as connection, connection.begin():
        revision = _revision(connection)
        if revision is None:
            raise InvalidInput("the database has no registry schema (it was never migrated)")
        tables = {
            table.name: [
                {key: _encode(value) for key, value in row._mapping.items()}
                for row in connection.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in _tables()
        }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_revision": revision,
        "created_at": utcnow().isoformat(),
        "counterpoint_version": __version__,
        "source_dialect": engine.dialect.name,
        "tables": tables,
    }


def _decode_rows(table: Table, rows: object) -> list[dict[str, Any]]:
    """The dump's rows of ``table`` as insertable values; ``InvalidInput`` naming the first bad one."""
    if not isinstance(rows, list):
        raise InvalidInput(f"registry dump: table '{table.name}' must be a list of rows")
    columns = {column.name: column for column in table.columns}
    required = {
        c.name for c in table.columns if not c.nullable and c.default is None and c.server_default is None
    }
    decoded = []
    for number, row in enumerate(rows):
        where = f"registry dump: {table.name}[{number}]"
        if not isinstance(row, dict):
            raise InvalidInput(f"{where} is not an object")
        unknown = set(row) - set(columns)
        if unknown:
            raise InvalidInput(f"{where} has columns this schema does not know: {sorted(unknown)}")
        missing = {name for name in required | {c.name for c in table.primary_key} if row.get(name) is None}
        if missing:
            raise InvalidInput(f"{where} lacks {sorted(missing)}")
        values = dict(row)
        for name, value in row.items():
            if isinstance(columns[name].type, UTCDateTime) and value is not None:
                try:
                    parsed = datetime.fromisoformat(str(value))
                except ValueError:
                    raise InvalidInput(f"{where}: {name} is not an ISO timestamp: {value!r}") from None
                if parsed.tzinfo is None:
                    raise InvalidInput(f"{where}: {name} has no time zone: {value!r}")
                values[name] = parsed
        decoded.append(values)
    return decoded


def check_dump(dump: object) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """Validate a dump's envelope and rows; its schema revision and the decoded rows per table."""
    if not isinstance(dump, Mapping) or dump.get("format") != FORMAT:
        raise InvalidInput(f'not a Counterpoint registry dump (no "format": "{FORMAT}")')
    if dump.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(
            f"registry dump format version {dump.get('format_version')!r}; this release reads {FORMAT_VERSION}"
        )
    revision = dump.get("schema_revision")
    known = schema_revisions()
    if revision not in known:
        raise InvalidInput(
            f"registry dump of schema revision {revision!r}, which this release does not know "
            f"(it knows {', '.join(known)}): restore it with the release that made it, or a newer one"
        )
    tables = dump.get("tables")
    if not isinstance(tables, Mapping):
        raise InvalidInput("registry dump: 'tables' must be an object")
    by_name = {table.name: table for table in _tables()}
    unknown = set(tables) - set(by_name)
    if unknown:
        raise InvalidInput(f"registry dump has tables this schema does not know: {sorted(unknown)}")
    return str(revision), {name: _decode_rows(by_name[name], tables.get(name, [])) for name in by_name}


def _reset_sequences(connection: Connection) -> None:
    """PostgreSQL: move each serial id's sequence past the restored ids (SQLite needs nothing)."""
    for table in _tables():
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                        f'COALESCE(MAX("{column.name}"), 1), MAX("{column.name}") IS NOT NULL) '
                        f'FROM "{table.name}"'
                    ),
                    {"table": table.name, "column": column.name},
                )


def load_registry(target: str | Engine, dump: object) -> dict[str, int]:
    """Load ``dump`` into the empty database ``target`` (a URL or an engine); rows restored per table.

    All or nothing: one transaction migrates, inserts and migrates on to the newest schema. A
    database with any row in a registry table is refused (``Conflict``), one at another schema
    revision too (``InvalidInput``).
    """
    revision, rows = check_dump(dump)
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.execution_options(**WRITE_OPTIONS).begin() as connection:
            config = alembic_config(engine.url)
            config.attributes["connection"] = connection
            current = _revision(connection)
            if current is None:
                command.upgrade(config, revision)
            elif current != revision:
                raise InvalidInput(
                    f"the database is at schema revision {current}, the dump at {revision}: "
                    "restore into a new, empty database"
                )
            held = {t.name: connection.scalar(select(func.count()).select_from(t)) for t in _tables()}
            if any(held.values()):
                counts = ", ".join(f"{n} {name}" for name, n in held.items() if n)
                raise Conflict(
                    f"the database is not empty ({counts}): restore into a new database "
                    "(a new SQLite file, or CREATE DATABASE on PostgreSQL)"
                )
            for table in _tables():
                if rows[table.name]:
                    connection.execute(insert(table), rows[table.name])
            if engine.dialect.name == "postgresql":
                _reset_sequences(connection)
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise InvalidInput(
            f"restoring the registry failed, nothing was written: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        if not isinstance(target, Engine):
            engine.dispose()
    return {name: len(table_rows) for name, table_rows in rows.items()}
