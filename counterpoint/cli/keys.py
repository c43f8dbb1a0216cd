"""`counterpoint keys ...`: create, list and revoke API keys (needs an admin key)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli.shared import err, out

keys_app = typer.Typer(help="Create, list and revoke API keys (needs an admin key).", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope", "-s", help="read (alias: search), write, train or admin; repeat for several."
        ),
    ],
    name: Annotated[str | None, typer.Option(help="Who or what uses the key (default: key-<time>).")] = None,
) -> None:
    """Create an API key with the given scopes and print it: it is shown this once only."""
    created = cli.client().create_key(name or time.strftime("key-%Y%m%d-%H%M%S"), scope)
    err.print(f"created key {created.prefix} '{created.name}' with scopes {', '.join(created.scopes)}")
    err.print("store it now, it cannot be shown again; clients send it as 'Authorization: Bearer <key>'")
    out.print(created.key, soft_wrap=True)


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """API keys: prefix, name, scopes, created and revoked times (never the keys themselves)."""
    table = Table("id", "prefix", "name", "scopes", "created", "revoked")
    for key in cli.client().list_keys(include_revoked=all_keys):
        table.add_row(
            key.id, key.prefix, key.name, ", ".join(key.scopes),
            f"{key.created_at:%Y-%m-%d %H:%M}" if key.created_at else "",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id or prefix.")]) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    key = cli.client().revoke_key(key_id)
    out.print(f"revoked key {key.prefix} '{key.name}'")
