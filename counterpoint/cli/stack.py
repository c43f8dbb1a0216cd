"""`counterpoint up`, `down` and `status`: start, stop and check the local platform."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli.shared import out
from counterpoint.settings import get_settings


def up(
    demo: Annotated[bool, typer.Option(help="Index the SciFact demo collection.")] = True,
    ui: Annotated[bool, typer.Option(help="Start the Streamlit UI.")] = True,
    mlflow: Annotated[bool, typer.Option(help="Start the MLflow server.")] = True,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (HOST:6379) instead of starting a local one (setting ray_address)."
        ),
    ] = None,
    gateway_replicas: Annotated[
        int | None,
        typer.Option(
            min=1, help="Gateway replicas (setting gateway_replicas); more than one needs redis_url."
        ),
    ] = None,
) -> None:
    """Start the whole platform locally (Ray, MLflow, Serve, UI) and wait until Ctrl-C."""
    from counterpoint.infra.launcher import up as launch

    update: dict[str, object] = {"demo": demo, "start_ui": ui, "start_mlflow": mlflow}
    if ray_address is not None:
        update["ray_address"] = ray_address
    if gateway_replicas is not None:
        update["gateway_replicas"] = gateway_replicas
    launch(get_settings().model_copy(update=update))


def down() -> None:
    """Stop the platform started by `counterpoint up` for this data directory."""
    from counterpoint.infra.launcher import down as stop

    if stop(get_settings()):
        out.print("Counterpoint stopped.")
    else:
        out.print("Counterpoint is not running.")


def status() -> None:
    """Show the health of each part of the running platform."""
    health = cli.client().health()
    table = Table(title=f"Counterpoint at {get_settings().gateway_url}: {health.status}")
    table.add_column("part")
    table.add_column("status")
    table.add_column("detail")
    for name, part in health.components.items():
        colour = {"ok": "green", "degraded": "yellow", "down": "red"}[part.status]
        table.add_row(name, f"[{colour}]{part.status}[/]", part.detail or "")
    out.print(table)
    if health.status != "ok":
        raise typer.Exit(1)
