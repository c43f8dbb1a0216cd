"""Alembic environment of the registry database.

Two ways in: ``counterpoint.infra.db.engine.migrate`` passes an open connection through
``config.attributes["connection"]`` (start-up, the normal case); the ``alembic`` command line
(``alembic -c infra/db/alembic.ini revision --autogenerate -m ...``) gets the URL from
``-x url=...``, the ``sqlalchemy.url`` option, or Counterpoint's settings, in that order.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from counterpoint.infra.db.engine import make_engine, normalize_url
from counterpoint.infra.db.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from counterpoint.settings import get_settings

        url = get_settings().db_url
    return normalize_url(url).render_as_string(hide_password=False)


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Autogenerate: write ``UTCDateTime`` as its plain column type, so revisions never import
    the models (a revision must keep working after the models change)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER tables by copying them ("batch" mode)
        render_item=_render_item,
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """``--sql`` mode: write the SQL instead of running it."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        render_item=_render_item,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live database: the caller's connection, or one opened here."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
