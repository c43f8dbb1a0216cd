"""The `counterpoint` Typer app: every command group's commands, assembled in the order `--help` lists them.

Each command lives in the module of its group (`stack`, `embeddings`, `collections`, `evaluation`,
`generation`, `mining`, `jobs`, `models`, `keys`, `backups`); `main` is the console entry point.
"""

from __future__ import annotations

import sys

import typer

from counterpoint.cli import (
    backups,
    collections,
    embeddings,
    evaluation,
    generation,
    jobs,
    keys,
    mining,
    models,
    stack,
)
from counterpoint.cli.shared import err
from counterpoint.errors import CounterpointError, Unauthorized
from counterpoint.settings import get_settings

app = typer.Typer(
    help="Counterpoint: train, serve and search contrastive embedding models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for command, name in (
    (stack.up, None),
    (stack.down, None),
    (stack.status, None),
    (embeddings.embed, None),
    (collections.reindex, None),
    (collections.ingest, None),
    (collections.search, None),
    (embeddings.rerank, None),
    (evaluation.eval_retrieval, "eval-retrieval"),
    (generation.generate, None),
    (evaluation.eval_generation, "eval-generation"),
    (mining.mine, None),
    (jobs.train, None),
):
    app.command(name)(command)

for group, name in (
    (collections.collections_app, "collections"),
    (jobs.jobs_app, "jobs"),
    (models.models_app, "models"),
    (keys.keys_app, "keys"),
    (backups.backup_app, "backup"),
    (backups.restore_app, "restore"),
):
    app.add_typer(group, name=name)


def main() -> None:
    """Console entry point: run the CLI, turning platform errors into one readable line."""
    try:
        app()
    except CounterpointError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        if isinstance(exc, Unauthorized):
            key_file = get_settings().admin_key_file
            err.print(
                f"set COUNTERPOINT_API_KEY to a key (`counterpoint keys create`), or run where {key_file} is"
            )
        sys.exit(1)
