"""`counterpoint models ...`: served and registered models, aliases and deployment."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli.shared import err, out
from counterpoint.settings import Backend

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
    backend: Annotated[
        Backend | None,
        typer.Option(help="Run it with an exported backend (stored first by `counterpoint models export`)."),
    ] = None,
) -> None:
    """Load a registered model into the embedding service, ready for /v1/embeddings and collections."""
    card = cli.client().deploy_model(model, backend=backend)
    out.print(f"serving {card.id} ({card.dimensions} dimensions, {card.backend or 'torch'})")


@models_app.command("export")
def models_export(
    model: Annotated[
        str, typer.Argument(help="A registered version: models:/NAME@ALIAS or models:/NAME/VERSION.")
    ],
    backend: Annotated[Backend, typer.Option(help="The backend to export (not torch).")],
    tolerance: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Points of STS-B dev Spearman the export may lose and still be served "
            "(default: the setting export_tolerance, 1.0).",
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(min=2, help="Score on the first N STS-B dev pairs only (default: all 1,500)."),
    ] = None,
) -> None:
    """Export a registered bi-encoder to ONNX Runtime / OpenVINO (fp32 or int8), check it against the
    torch model on STS-B dev, and store it with the model version in MLflow when it passes.

    Runs here, against the MLflow server the settings name (COUNTERPOINT_TRACKING_URI); both scores
    go to the version's run. Exit status 1 when the export loses more than --tolerance: it is then
    not stored, and a replica refuses to serve it."""
    from counterpoint.settings import get_settings
    from counterpoint.workers.export import export_registered

    settings = get_settings()
    report = export_registered(
        model,
        backend,
        tracking_uri=settings.tracking_uri,
        cache_dir=settings.models_dir / "registry",
        tolerance=settings.export_tolerance if tolerance is None else tolerance,
        sample=sample,
        on_step=lambda step: err.print(f"[dim]{step}[/dim]"),
    )
    out.print(report.message)
    if not report.servable:
        raise typer.Exit(1)
    out.print(f"serve it: counterpoint models deploy {report.model} --backend {backend}")
