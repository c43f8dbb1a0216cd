"""Backups and restores on a stopped platform's data directory, without the gateway (the CLI's ``--offline``).

The same `Backups` the gateway runs behind its admin routes, built here on this machine's registry
and vector store; each entry point refuses while a platform runs on them (the embedded engine admits
one process). ``restore_registry`` loads a dump into an empty database, before any platform starts on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from counterpoint.errors import Conflict, InvalidInput
from counterpoint.schemas import CollectionRestored
from counterpoint.services.gateway.backups import Backups
from counterpoint.settings import Settings


@contextlib.contextmanager
def offline_backups(settings: Settings) -> Iterator[Backups]:
    """`Backups` on this machine's registry and vector store, refused while the platform runs on them."""
    from counterpoint.infra.db.registry import Registry
    from counterpoint.infra.processes import running_pid
    from counterpoint.infra.vectors import make_vector_store

    pid = running_pid(settings)
    if pid is not None:
        raise Conflict(
            f"the platform is running (pid {pid}) on {settings.resolved_data_dir}: drop --offline (the gateway "
            "then does it), or stop the platform first (`counterpoint down`)"
        )
    registry = Registry.from_settings(settings)
    store = make_vector_store(settings)
    try:
        yield Backups(settings, registry, store)
    finally:
        store.close()
        registry.close()


def backup_collection(settings: Settings, name: str, target: Path) -> Path:
    """Write collection ``name``'s archive to ``target`` (a file, or a directory to put it in); its path."""
    with offline_backups(settings) as backups, backups.scratch() as work:
        made = backups.backup_collection(name, work)
        path = target / made.name if target.is_dir() else target
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), path)
    return path


def restore_collection(
    settings: Settings, archive: Path, *, name: str | None = None, replace: bool = False
) -> CollectionRestored:
    """Restore a collection from its archive into this machine's data directory."""
    with offline_backups(settings) as backups:
        return asyncio.run(backups.restore_collection(archive, name=name, replace=replace))


def dump_registry(settings: Settings) -> dict[str, Any]:
    """Every row of the configured registry database, as a dump (read directly, not through the gateway)."""
    from counterpoint.infra.db.dump import dump_registry as dump
    from counterpoint.infra.db.registry import Registry

    with Registry.from_settings(settings) as registry:
        return dump(registry.engine)


def restore_registry(
    settings: Settings, dump_path: Path, database_url: str | None = None
) -> tuple[str, dict[str, int]]:
    """Load the dump at ``dump_path`` into an empty database (default: the configured one).

    Returns where it went (the URL without its password) and the rows loaded per table. Refused
    while the platform runs on that database.
    """
    from sqlalchemy import make_url

    from counterpoint.infra.db.dump import load_registry
    from counterpoint.infra.processes import running_pid

    if not dump_path.is_file():
        raise InvalidInput(f"no such dump file: {dump_path}")
    url = database_url or settings.db_url
    if url == settings.db_url and (pid := running_pid(settings)) is not None:
        raise Conflict(
            f"the platform is running (pid {pid}) on this database: stop it first (`counterpoint down`)"
        )
    try:
        dump = json.loads(dump_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(
            f"{dump_path} is not JSON: pass a dump written by `counterpoint backup registry`"
        ) from None
    counts = load_registry(url, dump)
    return make_url(url).render_as_string(hide_password=True), counts
