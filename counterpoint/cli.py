"""The `counterpoint` command line: start/stop the local platform and drive the SDK.

Every command prints one clear line and exits non-zero on a bad input or an unreachable
gateway; it never shows a traceback for an error the user can fix.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from counterpoint.client import Client, read_jsonl
from counterpoint.errors import Conflict, CounterpointError, InvalidInput, Unauthorized
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
models_app = typer.Typer(
    help="Served and registered models: list, deploy, set the champion alias.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
keys_app = typer.Typer(help="Create, list and revoke API keys (needs an admin key).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
backup_app = typer.Typer(
    help="Back up a collection (an archive: registry entry + vector snapshot) or the registry (a JSON dump). "
    "Needs an admin key, or --offline on a stopped platform's data directory.",
    no_args_is_help=True,
)
app.add_typer(backup_app, name="backup")
restore_app = typer.Typer(
    help="Restore a collection from its backup archive, or the registry from its dump into an empty database.",
    no_args_is_help=True,
)
app.add_typer(restore_app, name="restore")

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
    model: Annotated[
        str | None, typer.Option(help="Served name, models:/NAME/VERSION or models:/NAME@ALIAS.")
    ] = None,
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


# --- models -----------------------------------------------------------------------------


@models_app.command("list")
def models_list() -> None:
    """Models the services serve now (embedding models and the LM)."""
    table = Table("id", "kind", "dimensions", "context")
    for card in client().models():
        table.add_row(card.id, card.kind, str(card.dimensions or ""), str(card.context_length or ""))
    out.print(table)


@models_app.command("registered")
def models_registered(
    name: Annotated[str | None, typer.Argument(help="One registered model (all when omitted).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
) -> None:
    """Registered models (MLflow registry): versions, aliases and evaluation metrics."""
    cp = client()
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
    model = client().set_alias(name, version, alias)
    out.print(f"models:/{model.name}@{alias} -> version {model.aliases[alias]}")


@models_app.command("deploy")
def models_deploy(
    model: Annotated[str, typer.Argument(help="models:/NAME@ALIAS, models:/NAME/VERSION or a served name.")],
) -> None:
    """Load a registered model into the embedding service, ready for /v1/embeddings and collections."""
    card = client().deploy_model(model)
    out.print(f"serving {card.id} ({card.dimensions} dimensions)")


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
    model: Annotated[
        str | None,
        typer.Option(help="Embedding model: a served name or models:/NAME@ALIAS (kept as its version)."),
    ] = None,
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


@collections_app.command("prune")
def collections_prune(name: str) -> None:
    """Delete the old physical collections a re-index kept (its rollback copies)."""
    dropped = client().delete_previous(name)
    out.print(f"deleted {len(dropped)} previous collection(s) of '{name}': {', '.join(dropped) or '-'}")


@app.command()
def reindex(
    name: Annotated[str, typer.Argument(help="Collection to re-index.")],
    model: Annotated[
        str, typer.Option(help="New model: models:/NAME@ALIAS, models:/NAME/VERSION, a served name.")
    ],
    follow_job: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Show progress until it switches.")
    ] = True,
) -> None:
    """Re-embed a collection with a new model without downtime, then switch searches to it at once."""
    job = client().reindex(name, model)
    out.print(f"re-indexing '{name}' with {job.config['model']} (job {job.id}); searches keep answering")
    if follow_job:
        job = follow(job.id)
        if job.status != "succeeded":
            err.print(
                f"[red]re-index {job.status}:[/] {job.error or ''} ('{name}' still serves its old model)"
            )
            raise typer.Exit(1)
        info = client().get_collection(name)
        out.print(
            f"'{name}' now uses {info.model} ({info.dimensions} dims, {info.count} documents); "
            f"the old copy is kept: `counterpoint collections prune {name}` deletes it"
        )


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


_FUSION = typer.Option(
    min=0.0,
    max=1.0,
    help="Weight of the first-stage score mixed into the reranked score (0: reranker alone; "
    "default: the server's rerank_fusion setting).",
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
    rerank: Annotated[bool, typer.Option(help="Rerank the candidates with the cross-encoder.")] = False,
    rerank_top_k: Annotated[int | None, typer.Option(help="Candidates to rerank (default 100).")] = None,
    rerank_fusion: Annotated[float | None, _FUSION] = None,
) -> None:
    """Search a collection by text (optionally reranked by the cross-encoder)."""
    parsed = None
    if filter:
        try:
            parsed = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--filter is not valid JSON: {exc.msg}") from None
    reply = client().search(
        collection, query, top_k=top_k, filter=parsed, rerank=rerank, rerank_top_k=rerank_top_k,
        rerank_fusion=rerank_fusion,
    )  # fmt: skip
    if as_json:
        out.print_json(reply.model_dump_json())
        return
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.0f}" for k, v in reply.timings.items())
    table = Table(title=f"'{query}' in {collection} ({reply.took_ms:.0f} ms: {stages})", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    if reply.reranked_by:
        table.add_column("was", justify="right")
    table.add_column("id")
    table.add_column("title / text", overflow="fold")
    for rank, hit in enumerate(reply.hits, start=1):
        body = hit.title or ""
        snippet = (hit.text or "")[:160]
        was = [f"#{hit.first_stage_rank}"] if reply.reranked_by else []
        table.add_row(
            str(rank), f"{hit.score:.4f}", *was, hit.id, f"[bold]{body}[/]\n{snippet}" if body else snippet
        )
    out.print(table)


@app.command()
def rerank(
    query: Annotated[str, typer.Argument(help="The query.")],
    documents: Annotated[list[str], typer.Argument(help="Documents to score.")],
    top_n: Annotated[int | None, typer.Option(help="Show only the best n.")] = None,
    model: Annotated[str | None, typer.Option(help="Cross-encoder (default: the served one).")] = None,
) -> None:
    """Score documents for a query with the cross-encoder, best first."""
    reply = client().rerank(query, documents, top_n=top_n, model=model)
    table = Table("#", "score", "index", "document", title=f"reranked by {reply.model}")
    for rank, result in enumerate(reply.results, start=1):
        mark = " (truncated)" if result.truncated else ""
        table.add_row(
            str(rank),
            f"{result.relevance_score:.4f}",
            str(result.index),
            documents[result.index][:120] + mark,
        )
    out.print(table)
    for warning in reply.warnings:
        err.print(f"[yellow]note:[/] {warning}")


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
    rerank: Annotated[bool, typer.Option(help="Two-stage: rerank each query's candidates.")] = False,
    rerank_top_k: Annotated[int | None, typer.Option(help="Candidates reranked per query.")] = None,
    rerank_fusion: Annotated[float | None, _FUSION] = None,
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
            collection, texts, top_k=top_k, on_progress=lambda n: progress.advance(task, n),
            rerank=rerank, rerank_top_k=rerank_top_k, rerank_fusion=rerank_fusion,
        )  # fmt: skip
    metrics = evaluate_run(run, judged)
    if as_json:
        out.print_json(json.dumps(metrics.as_dict()))
        return
    table = Table(title=f"{collection}: {metrics.n_queries} queries")
    for name in ("nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(name, justify="right")
    table.add_row(f"{metrics.ndcg_at_10:.2f}", f"{metrics.recall_at_100:.2f}", f"{metrics.mrr_at_10:.2f}")
    out.print(table)


# --- text generation --------------------------------------------------------------------

DECODING_HELP = "greedy, sampling, contrastive_search or contrastive_decoding."


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="The prompt (a user message unless --raw).")],
    decoding: Annotated[str, typer.Option(help=DECODING_HELP)] = "greedy",
    max_tokens: Annotated[int, typer.Option(help="Most new tokens.")] = 64,
    stream: Annotated[bool, typer.Option("--stream", help="Print the text as it is generated.")] = False,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Continue the prompt as raw text (/v1/completions), no chat template."),
    ] = False,
    system: Annotated[str | None, typer.Option(help="System message (chat only).")] = None,
    top_k: Annotated[int | None, typer.Option(help="contrastive_search candidates; sampling top-k.")] = None,
    penalty_alpha: Annotated[
        float | None, typer.Option(help="contrastive_search degeneration penalty.")
    ] = None,
    cd_alpha: Annotated[
        float | None, typer.Option(help="contrastive_decoding plausibility threshold.")
    ] = None,
    amateur_layers: Annotated[int | None, typer.Option(help="contrastive_decoding amateur depth.")] = None,
    amateur_temperature: Annotated[float | None, typer.Option(help="contrastive_decoding amateur τ.")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature.")] = None,
    top_p: Annotated[float | None, typer.Option(help="sampling nucleus mass.")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed.")] = None,
    stop: Annotated[list[str], typer.Option(help="Stop string (repeatable).")] = [],  # noqa: B006
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw response.")] = False,
) -> None:
    """Generate text with the served causal LM (chat template unless --raw); usage goes to stderr."""
    params = {
        "decoding": decoding, "max_tokens": max_tokens, "top_k": top_k, "penalty_alpha": penalty_alpha,
        "cd_alpha": cd_alpha, "amateur_layers": amateur_layers, "amateur_temperature": amateur_temperature,
        "temperature": temperature, "top_p": top_p, "seed": seed, "stop": stop or None,
    }  # fmt: skip
    if raw and system:
        raise InvalidInput("--system applies to chat; drop --raw to use it")
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    cp = client()
    started = time.perf_counter()
    if stream and not as_json:
        with cp.stream_complete(prompt, **params) if raw else cp.stream_chat(messages, **params) as deltas:
            for delta in deltas:
                sys.stdout.write(delta)
                sys.stdout.flush()
            sys.stdout.write("\n")
            usage, finish = deltas.usage, deltas.finish_detail
    else:
        reply = cp.complete(prompt, **params) if raw else cp.chat(messages, **params)
        if as_json:
            out.print_json(reply.model_dump_json())
            return
        out.print(reply.text, markup=False, highlight=False)
        usage, finish = reply.usage, reply.choices[0].finish_detail
    seconds = time.perf_counter() - started
    if usage is not None:
        rate = usage.completion_tokens / seconds if seconds > 0 else 0.0
        err.print(
            f"[dim]{decoding}: {usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens, "
            f"finish {finish}, {rate:.1f} tokens/s[/]"
        )


@app.command("eval-generation")
def eval_generation(
    prompts: Annotated[
        Path | None, typer.Option(help="JSONL of {id, prompt}; default: the shipped set")
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="New tokens per continuation.")] = 64,
    methods: Annotated[
        list[str] | None,
        typer.Option("--methods", "-m", help="Method to compare (repeatable; default: all four)."),
    ] = None,
    num_prompts: Annotated[int | None, typer.Option(help="Use only the first N prompts.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="Raw completions instead of chat turns.")] = False,
    coherence: Annotated[bool, typer.Option(help="Score coherence with the platform's embeddings.")] = True,
    mlflow: Annotated[bool, typer.Option(help="Log to MLflow when a server is reachable.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Compare decoding methods on a prompt set: rep-2/3/4, diversity, coherence; logged to MLflow."""
    from counterpoint.generation_eval import (
        METHOD_PARAMS,
        evaluate_generation,
        log_to_mlflow,
        read_prompts,
        tracking_reachable,
    )  # fmt: skip

    chosen = [m.strip() for item in (methods or list(METHOD_PARAMS)) for m in item.split(",") if m.strip()]
    if num_prompts is not None and num_prompts < 1:
        raise InvalidInput("--num-prompts must be at least 1")
    items = read_prompts(prompts)[:num_prompts]
    cp = client()
    with _progress(f"{len(chosen)} methods x {len(items)} prompts") as progress:
        task = progress.add_task("generate", total=len(chosen) * len(items))
        results = evaluate_generation(
            cp, items, chosen, max_tokens=max_tokens, chat=not raw, coherence=coherence,
            on_progress=lambda n: progress.advance(task, n),
        )  # fmt: skip
    if as_json:
        out.print_json(json.dumps([r.row() for r in results]))
    else:
        table = Table(
            title=f"generation quality: {len(items)} prompts, {max_tokens} tokens",
            caption="rep-n: % repeated n-grams; div.: diversity; coh.: coherence; tokens: mean words",
            show_edge=False,
        )
        table.add_column("method", no_wrap=True, min_width=20)
        for name in ("rep-2", "rep-3", "rep-4", "div.", "coh.", "tokens", "tok/s"):
            table.add_column(name, justify="right", no_wrap=True)
        for r in results:
            m = r.metrics
            table.add_row(
                r.method, f"{m.rep_2:.2f}", f"{m.rep_3:.2f}", f"{m.rep_4:.2f}", f"{m.diversity:.3f}",
                "n/a" if m.coherence is None else f"{m.coherence:.3f}", f"{m.mean_tokens:.1f}",
                f"{r.tokens_per_second:.1f}",
            )  # fmt: skip
        out.print(table)
    settings = get_settings()
    if not mlflow:
        return
    if not tracking_reachable(settings.tracking_uri):
        err.print(f"[yellow]MLflow is not reachable at {settings.tracking_uri}; results not logged[/]")
        return
    models = [m.id for m in cp.models() if m.kind == "causal-lm"]
    run_params = {
        "model": models[0] if models else "unknown", "num_prompts": len(items), "max_tokens": max_tokens,
        "endpoint": "completions" if raw else "chat", "prompts": str(prompts or "shipped"),
    }  # fmt: skip
    run_id = log_to_mlflow(settings.tracking_uri, results, items, run_params)
    err.print(f"logged to MLflow experiment 'generation-eval' at {settings.tracking_uri} (run {run_id})")


# --- hard-negative mining ---------------------------------------------------------------


@app.command()
def mine(
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Triplet JSONL to write.")],
    beir: Annotated[
        Path | None, typer.Option(help="BEIR directory (corpus, queries, qrels/); default: shipped SciFact.")
    ] = None,
    split: Annotated[str, typer.Option(help="qrels split whose queries are mined (never test).")] = "train",
    model: Annotated[
        str, typer.Option(help="Retriever: a packaged name, a local directory or models:/NAME@ALIAS.")
    ] = "all-MiniLM-L6-v2",
    top_k: Annotated[int, typer.Option(help="Candidates retrieved per query.")] = 30,
    skip_top: Annotated[int, typer.Option(help="Skip this many top candidates outright.")] = 0,
    max_score_ratio: Annotated[
        float,
        typer.Option(help="Drop candidates scoring above this x the positive's score (false negatives)."),
    ] = 0.95,
    max_seq_length: Annotated[int, typer.Option(help="Tokens per text when embedding.")] = 256,
    negatives: Annotated[
        int,
        typer.Option(
            help="Hard negatives per (query, positive): columns negative, negative_2 .. (a reranker's group)."
        ),
    ] = 1,
    collection: Annotated[
        str | None,
        typer.Option(
            help="Mine from this live collection through the gateway (its search is the retriever)."
        ),
    ] = None,
) -> None:
    """Mine hard negatives for a BEIR split with a retriever; writes (anchor, positive, negative) triplets
    (with --negatives K, K negatives per row).

    By default the corpus is embedded here with --model; with --collection the platform's own search
    over that collection retrieves the candidates (the BEIR directory gives the queries, the qrels and
    the positives' text).
    """
    from counterpoint.datasets import default_scifact_dir
    from counterpoint.infra.tracking import local_model
    from counterpoint.workers.mining import mine_beir

    root = beir or default_scifact_dir()
    if not (root / "qrels").is_dir():
        raise InvalidInput(f"--beir {root}: not a BEIR directory (no qrels/ inside)")
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not (qrels_file.exists() or qrels_file.with_name(qrels_file.name + ".gz").exists()):
        raise InvalidInput(f"--split {split}: no {qrels_file.name} in {root / 'qrels'}")
    if collection is not None:
        triplets, report = _mine_collection(
            collection, root, split, top_k, skip_top, max_score_ratio, negatives
        )
        _write_triplets(triplets, report, out_path, max_score_ratio)
        return
    settings = get_settings()
    model = local_model(model, settings.tracking_uri, settings.models_dir / "registry", where="--model")
    with _progress("embedding the corpus") as bar:
        task = bar.add_task("embed", total=None)
        triplets, report = mine_beir(
            root, split, model=model, top_k=top_k, skip_top=skip_top, max_score_ratio=max_score_ratio,
            max_seq_length=max_seq_length, negatives=negatives,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    _write_triplets(triplets, report, out_path, max_score_ratio)


def _mine_collection(
    collection: str, root: Path, split: str, top_k: int, skip_top: int, max_score_ratio: float, negatives: int
) -> tuple[list[dict[str, str]], Any]:
    """Candidates from the live collection's search; texts of positives and negatives from the BEIR corpus."""
    from counterpoint.datasets import iter_corpus, load_qrels, load_queries, passage_text
    from counterpoint.workers.mining import mine_triplets

    if split == "test":
        raise InvalidInput("mining the test split would train on test data; mine 'train' (or a dev split)")
    cp = client()
    info = cp.get_collection(collection)
    qrels = load_qrels(root / "qrels" / f"{split}.tsv")
    queries = load_queries(root / "queries.jsonl")
    corpus = {d["_id"]: passage_text(d["title"], d["text"]) for d in iter_corpus(root)}

    with _progress(f"searching '{collection}' ({info.count} documents)") as bar:
        task = bar.add_task("mine", total=len(qrels))

        def retrieve(texts: Any, k: int) -> list[list[tuple[str, float]]]:
            run = cp.search_many(
                collection, {str(i): t for i, t in enumerate(texts)}, top_k=k,
                on_progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
            return [sorted(run[str(i)].items(), key=lambda kv: -kv[1]) for i in range(len(texts))]

        triplets, report = mine_triplets(
            queries, qrels, corpus, retrieve, top_k=top_k, skip_top=skip_top,
            max_score_ratio=max_score_ratio, negatives=negatives,
        )  # fmt: skip
    if report.queries and not report.dropped_positives:
        raise InvalidInput(
            f"collection '{collection}' returned none of the {split} queries' positives in their top {top_k}: "
            f"it does not hold this data set's documents (or they are not indexed yet); index the corpus "
            f"of {root} first"
        )
    return triplets, report


def _write_triplets(
    triplets: list[dict[str, str]], report: Any, out_path: Path, max_score_ratio: float
) -> None:
    from counterpoint.workers.mining import write_jsonl

    write_jsonl(triplets, out_path)
    out.print(
        f"wrote {report.triplets} triplets for {report.queries} queries to {out_path}: "
        f"{report.candidates} candidates, {report.dropped_positives} positives and "
        f"{report.dropped_false_negatives} likely false negatives (score > {max_score_ratio} x positive) "
        f"dropped, {report.dropped_skip_top} skipped at the top; "
        f"{report.queries_without_negative} queries had no negative left"
    )
    for note in report.notes:
        err.print(f"[yellow]note:[/] {note}")


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


def follow_to_the_end(job_id: str) -> None:
    """Follow a job, print its outcome and final metrics; exit 1 unless it succeeded."""
    job = follow(job_id)
    out.print(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""))
    out.print(_job_line(job))
    if job.status != "succeeded":
        raise typer.Exit(1)


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
        follow_to_the_end(job.id)


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


@jobs_app.command("resume")
def jobs_resume(
    job_id: str,
    follow_job: Annotated[bool, typer.Option("--follow", "-f", help="Watch it until it finishes.")] = False,
) -> None:
    """Run a failed or cancelled job again from its last checkpoint (same MLflow run)."""
    job = client().resume_job(job_id)
    out.print(f"job {job.id} resubmitted ({job.status})")
    if follow_job:
        follow_to_the_end(job.id)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Stop a running job."""
    job = client().cancel_job(job_id)
    out.print(f"job {job.id} {job.status}")


# --- API keys ---------------------------------------------------------------------------


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
    created = client().create_key(name or time.strftime("key-%Y%m%d-%H%M%S"), scope)
    err.print(f"created key {created.prefix} '{created.name}' with scopes {', '.join(created.scopes)}")
    err.print("store it now, it cannot be shown again; clients send it as 'Authorization: Bearer <key>'")
    out.print(created.key, soft_wrap=True)


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
) -> None:
    """API keys: prefix, name, scopes, created and revoked times (never the keys themselves)."""
    table = Table("id", "prefix", "name", "scopes", "created", "revoked")
    for key in client().list_keys(include_revoked=all_keys):
        table.add_row(
            key.id, key.prefix, key.name, ", ".join(key.scopes),
            f"{key.created_at:%Y-%m-%d %H:%M}" if key.created_at else "",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )  # fmt: skip
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id or prefix.")]) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    key = client().revoke_key(key_id)
    out.print(f"revoked key {key.prefix} '{key.name}'")


# --- backups ----------------------------------------------------------------------------

OFFLINE_HELP = (
    "Work on this machine's data directory (COUNTERPOINT_DATA_DIR) directly instead of through the "
    "gateway; the platform there must be stopped."
)


def _bytes_progress(label: str) -> Progress:
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err)


@contextlib.contextmanager
def _offline() -> Iterator[Any]:
    """`Backups` on this machine's registry and vector store, refused while the platform runs on them."""
    from counterpoint.infra.db.registry import Registry
    from counterpoint.infra.launcher import running_pid
    from counterpoint.infra.vectors import make_vector_store
    from counterpoint.services.gateway.backups import Backups

    settings = get_settings()
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
        with _offline() as backups, backups.scratch() as work:
            made = backups.backup_collection(name, work)
            path = target / made.name if target.is_dir() else target
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(made), path)
    else:
        with _bytes_progress(f"backup of '{name}'") as progress:
            task = progress.add_task("download", total=None)
            path = client().backup_collection(name, target, on_progress=lambda n: progress.advance(task, n))
    _print_archive(path)


def _print_archive(path: Path) -> None:
    import tarfile

    from counterpoint.services.gateway.archive import MANIFEST

    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    coll, vectors = manifest["collection"], manifest["vectors"]
    size = path.stat().st_size / 1e6
    out.print(
        f"wrote {path} ({size:.1f} MB): '{coll['name']}', {vectors['points']} documents, {coll['model']} "
        f"({coll['dimensions']} dims), {vectors['format']} snapshot",
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
        from counterpoint.infra.db.dump import dump_registry
        from counterpoint.infra.db.registry import Registry

        with Registry.from_settings(get_settings()) as registry:
            dump = dump_registry(registry.engine)
    else:
        dump = client().backup_registry().model_dump(mode="json")
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
        import asyncio

        with _offline() as backups:
            done = asyncio.run(backups.restore_collection(archive, name=name, replace=replace))
    else:
        with _bytes_progress(f"restore of {archive.name}") as progress:
            task = progress.add_task("upload", total=archive.stat().st_size)
            done = client().restore_collection(
                archive, name=name, replace=replace, on_progress=lambda n: progress.advance(task, n)
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
    from counterpoint.infra.db.dump import load_registry
    from counterpoint.infra.launcher import running_pid

    if not dump_path.is_file():
        raise InvalidInput(f"no such dump file: {dump_path}")
    settings = get_settings()
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
    from sqlalchemy import make_url

    where = make_url(url).render_as_string(hide_password=True)
    out.print(f"restored into {where}: " + ", ".join(f"{n} {t}" for t, n in counts.items()), soft_wrap=True)


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
