"""`counterpoint models ...`: served and registered models, aliases and deployment."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli.shared import out

models_app = typer.Typer(
    help="Served and registered models: list, deploy, set the champion alias.", no_args_is_help=True
)


@models_app.command("list")
def models_list() -> None:
    """Models the services serve now (embedding models and the LM)."""
    table = Table("id", "kind", "dimensions", "context")
    for card in cli.client().models():
        table.add_row(card.id, card.kind, str(card.dimensions or ""), str(card.context_length or ""))
    out.print(table)


@models_app.command("registered")
def models_registered(
    name: Annotated[str | None, typer.Argument(help="One registered model (all when omitted).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """Registered models (MLflow registry): versions, aliases and evaluation metrics."""
    cp = cli.client()
    found = [cp.registered_model(name)] if name else cp.registered_models()
    if as_json:
        out.print_json(json.dumps([m.model_dump(mode="json") for m in found]))
        return
    table = Table("model", "version", "aliases", "uri", "metrics", "created")
    for model in found:
        for version in model.versions:
            metrics = ", ".join(f"{k}={v:.2f}" for k, v in sorted(version.metrics.items())[:5])
            created = f"{version.created_at:%Y-%m-%d %H:%M}" if version.created_at else ""
            table.add_row(
                model.name, version.version, ", ".join(version.aliases), version.uri, metrics, created
            )
    out.print(table)
    if not found:
        out.print("no registered models yet: a training job with `register_as` registers one")


@models_app.command("alias")
def models_alias(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version the alias points to.")],
    alias: Annotated[str, typer.Option(help="Alias to set.")] = "champion",
) -> None:
    """Point models:/NAME@ALIAS (default: champion) at VERSION."""
    model = cli.client().set_alias(name, version, alias)
    out.print(f"models:/{model.name}@{alias} -> version {model.aliases[alias]}")


@models_app.command("deploy")
def models_deploy(
    model: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION or a served name.")],
) -> None:
    """Load a registered model into the embedding service, ready for /v1/embeddings and collections."""
    card = cli.client().deploy_model(model)
    out.print(f"serving {card.id} ({card.dimensions} dimensions)")
