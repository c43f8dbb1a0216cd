"""The `counterpoint` command line: start/stop the local platform and drive the SDK.

Every command prints one clear line and exits non-zero on a bad input or an unreachable
gateway; it never shows a traceback for an error the user can fix.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from counterpoint.client import Client, read_jsonl
from counterpoint.errors import CounterpointError, InvalidInput
from counterpoint.settings import get_settings

app = typer.Typer(
    help="Counterpoint: train, serve and search contrastive embedding models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
collections_app = typer.Typer(help="Create, list, describe and delete collections.", no_args_is_help=True)
app.add_typer(collections_app, name="collections")
jobs_app = typer.Typer(help="List, inspect, follow and cancel training jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

out = Console()
err = Console(stderr=True)


def client() -> Client:
    return Client(get_settings().gateway_url)


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)


# --- platform ---------------------------------------------------------------------------


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Index the SciFact demo collection.")] = True,
    ui: Annotated[bool, typer.Option(help="Start the Streamlit UI.")] = True,
    mlflow: Annotated[bool, typer.Option(help="Start the MLflow server.")] = True,
) -> None:
    """Start the whole platform locally (Ray, MLflow, Serve, UI) and wait until Ctrl-C."""
    from counterpoint.infra.launcher import up as launch

    settings = get_settings().model_copy(update={"demo": demo, "start_ui": ui, "start_mlflow": mlflow})
    launch(settings)


@app.command()
def down() -> None:
    """Stop the platform started by `counterpoint up` for this data directory."""
    from counterpoint.infra.launcher import down as stop

    if stop(get_settings()):
        out.print("Counterpoint stopped.")
    else:
        out.print("Counterpoint is not running.")


@app.command()
def status() -> None:
    """Show the health of each part of the running platform."""
    health = client().health()
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


# --- embeddings -------------------------------------------------------------------------


@app.command()
def embed(
    texts: Annotated[list[str], typer.Argument(help="Texts to embed.")],
    model: Annotated[str | None, typer.Option(help="Served model name.")] = None,
    dimensions: Annotated[int | None, typer.Option(help="Matryoshka truncation.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full vectors as JSON.")] = False,
) -> None:
    """Embed texts with a served model."""
    reply = client().embed(texts, model=model, dimensions=dimensions)
    if as_json:
        out.print_json(reply.model_dump_json())
        return
    for text, item in zip(texts, reply.data, strict=True):
        vector = item.embedding
        assert isinstance(vector, list)
        head = ", ".join(f"{v:+.4f}" for v in vector[:6])
        out.print(f"[bold]{text[:60]}[/]  dim={len(vector)}  [{head}, ...]")
    out.print(f"model {reply.model}, {reply.usage.total_tokens} tokens")


# --- collections ------------------------------------------------------------------------


def _parse_indexes(fields: list[str]) -> dict[str, Any]:
    indexes: dict[str, Any] = {}
    for spec in fields:
        name, _, kind = spec.partition(":")
        if not name or kind not in ("keyword", "integer", "float", "bool"):
            raise InvalidInput(f"--index '{spec}': use FIELD:TYPE with TYPE keyword, integer, float or bool")
        indexes[name] = kind
    return indexes


@collections_app.command("list")
def collections_list() -> None:
    """List collections with their model and size."""
    table = Table("name", "model", "dims", "distance", "documents", "indexed fields")
    for info in client().list_collections():
        table.add_row(
            info.name, info.model, str(info.dimensions), info.distance, str(info.count),
            ", ".join(f"{k}:{v}" for k, v in info.payload_indexes.items()),
        )  # fmt: skip
    out.print(table)


@collections_app.command("create")
def collections_create(
    name: str,
    model: Annotated[str | None, typer.Option(help="Embedding model (default: served default).")] = None,
    distance: Annotated[str, typer.Option(help="cosine, dot or euclid.")] = "cosine",
    index: Annotated[list[str], typer.Option(help="Payload field to index, FIELD:TYPE (repeatable).")] = [],  # noqa: B006
) -> None:
    """Create an empty collection."""
    info = client().create_collection(
        name, model=model, distance=distance, payload_indexes=_parse_indexes(index)
    )  # type: ignore[arg-type]
    out.print(f"created '{info.name}' ({info.model}, {info.dimensions} dims, {info.distance})")


@collections_app.command("info")
def collections_info(name: str) -> None:
    """Describe a collection."""
    out.print_json(client().get_collection(name).model_dump_json())


@collections_app.command("delete")
def collections_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete a collection and its vectors."""
    if not yes and not typer.confirm(f"delete collection '{name}' and all its vectors?"):
        raise typer.Exit(1)
    client().delete_collection(name)
    out.print(f"deleted '{name}'")


@app.command()
def ingest(
    collection: str,
    path: Annotated[Path, typer.Argument(help="JSONL file (or .jsonl.gz): id, text, title?, metadata?")],
    batch_size: Annotated[int, typer.Option(help="Documents per request.")] = 64,
    skip_existing: Annotated[bool, typer.Option(help="Skip ids already indexed (resume).")] = False,
    create: Annotated[bool, typer.Option(help="Create the collection if it does not exist.")] = False,
) -> None:
    """Embed and index the documents of a JSONL file, with a progress bar."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    docs = list(read_jsonl(path))
    cp = client()
    if create and collection not in {c.name for c in cp.list_collections()}:
        cp.create_collection(collection)
    with _progress(f"ingest → {collection}") as progress:
        task = progress.add_task("ingest", total=len(docs))
        result = cp.ingest(
            collection, docs, batch_size=batch_size, skip_existing=skip_existing,
            on_progress=lambda n: progress.advance(task, n),
        )  # fmt: skip
    out.print(
        f"indexed {result.indexed}, skipped {result.skipped} of {result.received}; "
        f"'{collection}' now holds {result.count} documents"
    )


@app.command()
def search(
    collection: str,
    query: str,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Number of hits.")] = 10,
    filter: Annotated[
        str | None, typer.Option(help="Qdrant-style filter JSON, e.g. '{\"must\": [...]}'")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw response.")] = False,
) -> None:
    """Search a collection by text."""
    parsed = None
    if filter:
        try:
            parsed = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--filter is not valid JSON: {exc.msg}") from None
    reply = client().search(collection, query, top_k=top_k, filter=parsed)
    if as_json:
        out.print_json(reply.model_dump_json())
        return
    table = Table(title=f"'{query}' in {collection} ({reply.took_ms:.0f} ms)", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column("title / text", overflow="fold")
    for rank, hit in enumerate(reply.hits, start=1):
        body = hit.title or ""
        snippet = (hit.text or "")[:160]
        table.add_row(
            str(rank), f"{hit.score:.4f}", hit.id, f"[bold]{body}[/]\n{snippet}" if body else snippet
        )
    out.print(table)


@app.command("eval-retrieval")
def eval_retrieval(
    collection: Annotated[str, typer.Option(help="Collection to evaluate.")],
    queries: Annotated[
        Path | None, typer.Option(help="queries.jsonl (BEIR); default: shipped SciFact")
    ] = None,
    qrels: Annotated[
        Path | None, typer.Option(help="qrels TSV (BEIR); default: shipped SciFact test")
    ] = None,
    top_k: Annotated[int, typer.Option(help="Hits retrieved per query.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 of a collection against relevance judgements."""
    from counterpoint.datasets import default_scifact_dir, load_qrels, load_queries
    from counterpoint.evaluation import evaluate_run

    base = default_scifact_dir()
    query_file = queries or base / "queries.jsonl.gz"
    qrel_file = qrels or base / "qrels" / "test.tsv.gz"
    for p in (query_file, qrel_file):
        if not Path(p).is_file():
            raise InvalidInput(f"no such file: {p}")
    judged = load_qrels(qrel_file)
    texts = {qid: text for qid, text in load_queries(query_file).items() if qid in judged}
    if not texts:
        raise InvalidInput("none of the judged queries appear in the queries file")
    with _progress(f"searching {len(texts)} queries") as progress:
        task = progress.add_task("eval", total=len(texts))
        run = client().search_many(
            collection, texts, top_k=top_k, on_progress=lambda n: progress.advance(task, n)
        )
    metrics = evaluate_run(run, judged)
    if as_json:
        out.print_json(json.dumps(metrics.as_dict()))
        return
    table = Table(title=f"{collection}: {metrics.n_queries} queries")
    for name in ("nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(name, justify="right")
    table.add_row(f"{metrics.ndcg_at_10:.2f}", f"{metrics.recall_at_100:.2f}", f"{metrics.mrr_at_10:.2f}")
    out.print(table)


# --- training jobs ----------------------------------------------------------------------


def _job_line(job: Any) -> str:
    m = job.metrics
    parts = [
        f"{k}={m[k]:.4g}"
        for k in sorted(m)
        if isinstance(m[k], int | float) and k not in ("step", "total_steps")
    ]
    return ", ".join(parts[:8])


def follow(job_id: str) -> Any:
    """Show a progress bar with live metrics until the job finishes; returns the final job."""
    cp = client()
    job = cp.get_job(job_id)
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"), console=err,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"{job.name} ({job.status})", total=None, metrics="")
        for job in cp.follow_job(job_id):
            total = job.metrics.get("total_steps")
            progress.update(
                task, description=f"{job.name} ({job.status})", total=total,
                completed=job.metrics.get("step", 0), metrics=_job_line(job),
            )  # fmt: skip
    return job


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Training config, YAML or JSON (see examples/).")],
    follow_job: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch progress until it finishes.")
    ] = False,
) -> None:
    """Validate a training config and submit it as a Ray job (tracked in MLflow)."""
    job = client().submit_job(config)
    out.print(f"submitted job {job.id} ({job.name}); follow with `counterpoint jobs show {job.id}`")
    if follow_job:
        job = follow(job.id)
        out.print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
        out.print(_job_line(job))
        if job.status != "succeeded":
            raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list() -> None:
    """Jobs, newest first."""
    table = Table("id", "name", "status", "step", "metrics", "created")
    for job in client().list_jobs():
        step = f"{job.metrics.get('step', '')}/{job.metrics.get('total_steps', '')}" if job.metrics else ""
        table.add_row(
            job.id[:8], job.name, job.status, step, _job_line(job), f"{job.created_at:%Y-%m-%d %H:%M}"
        )
    out.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, follow_job: Annotated[bool, typer.Option("--follow", "-f")] = False) -> None:
    """A job's state, config, MLflow run and metrics."""
    job = follow(job_id) if follow_job else client().get_job(job_id)
    out.print_json(job.model_dump_json())


@jobs_app.command("logs")
def jobs_logs(job_id: str, tail: Annotated[int, typer.Option(help="Lines from the end.")] = 200) -> None:
    """The tail of a job's driver log."""
    out.print(client().job_logs(job_id, tail=tail), markup=False, highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Stop a running job."""
    job = client().cancel_job(job_id)
    out.print(f"job {job.id} {job.status}")


def main() -> None:
    """Console entry point: run the CLI, turning platform errors into one readable line."""
    try:
        app()
    except CounterpointError as exc:
        err.print(f"[red]error:[/] {exc.message}")
        sys.exit(1)
