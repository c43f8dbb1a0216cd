"""`counterpoint backup ...` and `restore ...`: collection archives and registry dumps.

Through the gateway by default (the SDK); with ``--offline`` on this machine's stopped platform
(`counterpoint.services.gateway.offline`). This module only picks the path and prints the outcome.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from counterpoint import cli
from counterpoint.cli import shared
from counterpoint.cli.shared import out
from counterpoint.errors import InvalidInput
from counterpoint.settings import get_settings

backup_app = typer.Typer(
    help="Back up a collection (an archive: registry entry + vector snapshot) or the registry (a JSON dump). "
    "Needs an admin key, or --offline on a stopped platform's data directory.",
    no_args_is_help=True,
)
restore_app = typer.Typer(
    help="Restore a collection from its backup archive, or the registry from its dump into an empty database.",
    no_args_is_help=True,
)

OFFLINE_HELP = (
    "Work on this machine's data directory (COUNTERPOINT_DATA_DIR) directly instead of through the "
    "gateway; the platform there must be stopped."
)


@backup_app.command("collection")
def backup_collection(
    name: Annotated[str, typer.Argument(help="Collection to back up.")],
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Archive file, or a directory (made if missing) for NAME-TIMESTAMP.cpbackup.tar.gz; default: here.",
        ),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help=OFFLINE_HELP)] = False,
) -> None:
    """Write a collection's backup archive: its registry entry and a consistent snapshot of its vectors.

    Searches keep answering meanwhile; ingest into it waits while the snapshot is copied.
    Restore it with `counterpoint restore collection FILE`.
    """
    target = out_path or Path.cwd()
    if not target.suffix and not target.exists():  # `-o backups/`: a directory, made if missing
        target.mkdir(parents=True)
    if offline:
        from counterpoint.services.gateway import offline as local

        path = local.backup_collection(get_settings(), name, target)
    else:
        with shared.bytes_progress(f"backup of '{name}'") as bar:
            task = bar.add_task("download", total=None)
            path = cli.client().backup_collection(name, target, on_progress=lambda n: bar.advance(task, n))
    _print_archive(path)


def _print_archive(path: Path) -> None:
    from counterpoint.services.gateway.archive import archive_manifest

    manifest = archive_manifest(path)
    coll, vectors = manifest.collection, manifest.vectors
    size = path.stat().st_size / 1e6
    out.print(
        f"wrote {path} ({size:.1f} MB): '{coll.name}', {vectors.points} documents, {coll.model} "
        f"({coll.dimensions} dims), {vectors.format} snapshot",
        soft_wrap=True,
    )


@backup_app.command("registry")
def backup_registry(
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="JSON file to write (default: registry-TIMESTAMP.json)."),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Read the configured database directly (COUNTERPOINT_DATABASE_URL)."),
    ] = False,
) -> None:
    """Dump every row of the registry database (collections, jobs, models, API key hashes) to JSON.

    The dump loads into an empty SQLite or PostgreSQL database: `counterpoint restore registry FILE`.
    It holds API key hashes, not keys; keep it as private as the database.
    """
    if offline:
        from counterpoint.services.gateway import offline as local

        dump = local.dump_registry(get_settings())
    else:
        dump = cli.client().backup_registry().model_dump(mode="json")
    path = out_path or Path(f"registry-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    path.write_text(json.dumps(dump, indent=1))
    counts = ", ".join(f"{len(rows)} {table}" for table, rows in dump["tables"].items())
    out.print(f"wrote {path}: {counts} (schema {dump['schema_revision']})", soft_wrap=True)


@restore_app.command("collection")
def restore_collection(
    archive: Annotated[Path, typer.Argument(help="Backup archive (.cpbackup.tar.gz).")],
    name: Annotated[
        str | None, typer.Option(help="Restore under this name (default: its name in the backup).")
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Overwrite an existing collection of that name (its documents are lost)."
        ),
    ] = False,
    offline: Annotated[bool, typer.Option("--offline", help=OFFLINE_HELP)] = False,
) -> None:
    """Restore a collection from its backup archive; searchable at once.

    The whole archive is checked first: a damaged or foreign file changes nothing. An existing
    collection is refused unless --replace; one the registry lists without vectors (after
    `counterpoint restore registry`) is filled in.
    """
    if not archive.is_file():
        raise InvalidInput(f"no such backup file: {archive}")
    if offline:
        from counterpoint.services.gateway import offline as local

        done = local.restore_collection(get_settings(), archive, name=name, replace=replace)
    else:
        with shared.bytes_progress(f"restore of {archive.name}") as bar:
            task = bar.add_task("upload", total=archive.stat().st_size)
            done = cli.client().restore_collection(
                archive, name=name, replace=replace, on_progress=lambda n: bar.advance(task, n)
            )
    info = done.collection
    out.print(
        f"restored '{info.name}' from the backup of '{done.source}' taken {done.backed_up_at:%Y-%m-%d %H:%M} UTC: "
        f"{info.count} documents, {info.model} ({info.dimensions} dims)"
        + ("; replaced the previous collection" if done.replaced else ""),
        soft_wrap=True,
    )


@restore_app.command("registry")
def restore_registry(
    dump_path: Annotated[
        Path, typer.Argument(metavar="DUMP", help="Registry dump (JSON) from `backup registry`.")
    ],
    database_url: Annotated[
        str | None,
        typer.Option(help="Target database (default: COUNTERPOINT_DATABASE_URL, or SQLite in the data dir)."),
    ] = None,
) -> None:
    """Load a registry dump into an empty database (SQLite or PostgreSQL; either from either).

    Run it before the platform starts on that database; then restore each collection's archive
    (`counterpoint restore collection FILE`) to bring back its vectors.
    """
    from counterpoint.services.gateway.offline import restore_registry as load

    where, counts = load(get_settings(), dump_path, database_url)
    out.print(f"restored into {where}: " + ", ".join(f"{n} {t}" for t, n in counts.items()), soft_wrap=True)
