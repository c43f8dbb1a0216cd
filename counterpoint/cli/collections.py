"""`counterpoint collections ...` (`upload-vectors` among them), `ingest`, `search` and `reindex`: collections
and what goes in and out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli import shared
from counterpoint.cli.shared import FUSION, err, out
from counterpoint.client import read_jsonl
from counterpoint.errors import InvalidInput
from counterpoint.schemas import Fusion, RetrievalMode, VectorDatatype

collections_app = typer.Typer(help="Create, list, describe and delete collections.", no_args_is_help=True)


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
    for info in cli.client().list_collections():
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
    m: Annotated[int | None, typer.Option("--m", help="HNSW links per point (default 16).")] = None,
    ef_construct: Annotated[int | None, typer.Option(help="HNSW build candidates (default 128).")] = None,
    hnsw_ef: Annotated[
        int | None, typer.Option(help="Search candidates (default 128); see check-recall.")
    ] = None,
    quantization: Annotated[
        bool | None,
        typer.Option("--quantization/--no-quantization", help="int8 copy in RAM, rescored (default on)."),
    ] = None,
    oversampling: Annotated[
        float | None, typer.Option(help="Rescored candidates per hit (default 2).")
    ] = None,
    on_disk: Annotated[
        bool | None,
        typer.Option(
            "--on-disk/--in-ram", help="Full vectors on disk (default: with quantization and float32)."
        ),
    ] = None,
    datatype: Annotated[
        VectorDatatype | None,
        typer.Option(
            help="Full vectors stored as float32 (default: read back exactly) or float16 (half the "
            "memory and disk, kept in RAM, same recall; read back rounded)."
        ),
    ] = None,
    lexical: Annotated[
        bool,
        typer.Option(
            "--lexical/--no-lexical", help="BM25 vectors for lexical and hybrid search (default on)."
        ),
    ] = True,
    bm25_k: Annotated[float, typer.Option(min=0, max=10, help="BM25 term-frequency saturation k1.")] = 1.2,
    bm25_b: Annotated[float, typer.Option(min=0, max=1, help="BM25 length normalisation b, 0-1.")] = 0.75,
) -> None:
    """Create an empty collection, with its own index settings if given."""
    settings = {
        "m": m,
        "ef_construct": ef_construct,
        "hnsw_ef": hnsw_ef,
        "quantization": quantization,
        "oversampling": oversampling,
        "on_disk": on_disk,
        "datatype": datatype,
    }
    info = cli.client().create_collection(
        name, model=model, distance=distance, payload_indexes=_parse_indexes(index), index=settings,
        lexical="bm25" if lexical else None, bm25={"k": bm25_k, "b": bm25_b},
    )  # type: ignore[arg-type]  # fmt: skip
    chosen = ", ".join(f"{k}={v}" for k, v in info.index.model_dump(exclude_none=True).items())
    if info.lexical:
        chosen += f"{', ' if chosen else ''}lexical bm25"
    out.print(
        f"created '{info.name}' ({info.model}, {info.dimensions} dims, {info.distance}"
        f"{'; ' + chosen if chosen else ''})"
    )


@collections_app.command("info")
def collections_info(name: str) -> None:
    """Describe a collection (JSON): its settings, size, and index_status / indexed_points of its graph."""
    out.print_json(cli.client().get_collection(name).model_dump_json())


@collections_app.command("check-recall")
def collections_check_recall(
    name: str,
    samples: Annotated[int, typer.Option(min=1, max=1000, help="Stored vectors used as queries.")] = 100,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="recall@k.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw report.")] = False,
) -> None:
    """Measure recall@k of approximate search against exact search, and suggest a search ef for 0.98."""
    report = cli.client().check_recall(name, samples=samples, top_k=top_k)
    if as_json:
        out.print_json(report.model_dump_json())
        return
    ef = report.hnsw_ef if report.hnsw_ef is not None else "default"
    out.print(
        f"'{name}': recall@{report.top_k} {report.recall:.3f} at hnsw_ef={ef}, p50 {report.p50_ms:.2f} ms "
        f"(exact search {report.exact_p50_ms:.2f} ms); {report.samples} queries, "
        f"{report.indexed_points}/{report.points} points in the graph"
    )
    table = Table("hnsw_ef", f"recall@{report.top_k}", "p50 ms")
    for step in report.ladder:
        table.add_row(str(step.hnsw_ef), f"{step.recall:.3f}", f"{step.p50_ms:.2f}")
    out.print(table)
    if report.suggested_hnsw_ef is None:
        out.print(
            f"no search ef of the ladder reaches {report.target}: re-create it with a larger --m / --ef-construct"
        )
    else:
        out.print(
            f"suggested: hnsw_ef={report.suggested_hnsw_ef} reaches recall@{report.top_k} >= {report.target}; "
            f"apply it with `counterpoint collections tune {name} --hnsw-ef {report.suggested_hnsw_ef}`"
        )


@collections_app.command("tune")
def collections_tune(
    name: str,
    hnsw_ef: Annotated[
        int | None,
        typer.Option(
            "--hnsw-ef", min=1, max=32768, help="Candidates a search explores (check-recall suggests one)."
        ),
    ] = None,
    oversampling: Annotated[
        float | None,
        typer.Option(min=1.0, max=16.0, help="Rescored candidates per result with int8 quantization."),
    ] = None,
) -> None:
    """Change a collection's search settings in place: searches use them at once, the graph stays."""
    if hnsw_ef is None and oversampling is None:
        raise typer.BadParameter("give --hnsw-ef and/or --oversampling")
    info = cli.client().tune_search(name, hnsw_ef=hnsw_ef, oversampling=oversampling)
    chosen = ", ".join(f"{k}={v}" for k, v in info.index.model_dump(exclude_none=True).items())
    out.print(f"'{name}': index settings now {chosen}")


@collections_app.command("prune")
def collections_prune(name: str) -> None:
    """Delete the old physical collections a re-index kept (its rollback copies)."""
    dropped = cli.client().delete_previous(name)
    out.print(f"deleted {len(dropped)} previous collection(s) of '{name}': {', '.join(dropped) or '-'}")


def reindex(
    name: Annotated[str, typer.Argument(help="Collection to re-index.")],
    model: Annotated[
        str | None,
        typer.Option(
            help="New model: models:/NAME@ALIAS, models:/NAME/VERSION, a served name (default: its own)."
        ),
    ] = None,
    lexical: Annotated[
        bool, typer.Option("--lexical", help="Add BM25 vectors (lexical and hybrid search) to the new copy.")
    ] = False,
    follow_job: Annotated[
        bool, typer.Option("--follow/--no-follow", help="Show progress until it switches.")
    ] = True,
) -> None:
    """Re-embed a collection with a new model (or add BM25 vectors with --lexical) without downtime,
    then switch searches to it at once."""
    job = cli.client().reindex(name, model, lexical="bm25" if lexical else None)
    adding = " adding BM25 vectors" if lexical else ""
    out.print(
        f"re-indexing '{name}' with {job.config['model']}{adding} (job {job.id}); searches keep answering"
    )
    if follow_job:
        job = shared.follow(job.id)
        if job.status != "succeeded":
            err.print(
                f"[red]re-index {job.status}:[/] {job.error or ''} ('{name}' still serves its old model)"
            )
            raise typer.Exit(1)
        info = cli.client().get_collection(name)
        out.print(
            f"'{name}' now uses {info.model} ({info.dimensions} dims, {info.count} documents); "
            f"the old copy is kept: `counterpoint collections prune {name}` deletes it"
        )


@collections_app.command("upload-vectors")
def collections_upload_vectors(
    name: Annotated[
        str, typer.Argument(help="Collection to upload into (it must exist; its dims must match).")
    ],
    path: Annotated[
        Path,
        typer.Argument(
            help="Vectors: .jsonl[.gz] (id, vector, text?, title?, metadata? per line), .npy (2-D float "
            "array; ids from --payloads) or .parquet (columns id, vector, text?, title?, metadata?; other "
            "columns become metadata)."
        ),
    ],
    payloads: Annotated[
        Path | None,
        typer.Option(
            help="With a .npy: JSONL whose line i holds row i's id and optional text, title, metadata."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Vectors per request.")] = 1000,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip ids already in the collection (re-run after a failure).")
    ] = False,
) -> None:
    """Upload precomputed vectors as they are (no embedding), with a progress bar.

    The whole file is checked first (dimensions, NaN/inf, repeated ids, metadata types, truncated or
    corrupt files); a bad file uploads nothing and the error names its line or row.
    """
    cp = cli.client()
    with shared.progress(f"vectors → {name}") as bar:
        task = bar.add_task("upload", total=None)
        result = cp.upload_vectors(
            name, path, payloads=payloads, batch_size=batch_size, resume=resume,
            on_checked=lambda total: bar.update(task, total=total),
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    out.print(
        f"stored {result.indexed}, skipped {result.skipped} of {result.received} vectors; "
        f"'{name}' now holds {result.count} points"
    )


@collections_app.command("delete")
def collections_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False
) -> None:
    """Delete a collection and its vectors."""
    if not yes and not typer.confirm(f"delete collection '{name}' and all its vectors?"):
        raise typer.Exit(1)
    cli.client().delete_collection(name)
    out.print(f"deleted '{name}'")


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
    cp = cli.client()
    if create and collection not in {c.name for c in cp.list_collections()}:
        cp.create_collection(collection)
    with shared.progress(f"ingest → {collection}") as bar:
        task = bar.add_task("ingest", total=len(docs))
        result = cp.ingest(
            collection, docs, batch_size=batch_size, skip_existing=skip_existing,
            on_progress=lambda n: bar.advance(task, n),
        )  # fmt: skip
    out.print(
        f"indexed {result.indexed}, skipped {result.skipped} of {result.received}; "
        f"'{collection}' now holds {result.count} documents"
    )


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
    rerank_fusion: Annotated[float | None, FUSION] = None,
    mode: Annotated[
        RetrievalMode,
        typer.Option(help="dense (the embedding model), lexical (BM25) or hybrid (both, fused)."),
    ] = "dense",
    fusion: Annotated[
        Fusion, typer.Option(help="hybrid: dbsf (normalised scores) or rrf (reciprocal ranks).")
    ] = "dbsf",
    lexical_weight: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="hybrid with --fusion rrf: the lexical ranking's share, 0-1 (0.5)."),
    ] = None,
    mmr: Annotated[
        float | None,
        typer.Option(
            min=0, max=1, help="Diversify with maximal marginal relevance: 0 (relevance) to 1 (diversity)."
        ),
    ] = None,
) -> None:
    """Search a collection by text: dense, lexical (BM25) or hybrid, optionally diversified (MMR) and
    reranked by the cross-encoder."""
    parsed = None
    if filter:
        try:
            parsed = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--filter is not valid JSON: {exc.msg}") from None
    reply = cli.client().search(
        collection, query, top_k=top_k, filter=parsed, rerank=rerank, rerank_top_k=rerank_top_k,
        rerank_fusion=rerank_fusion, mode=mode, fusion=fusion, lexical_weight=lexical_weight, mmr=mmr,
    )  # fmt: skip
    if as_json:
        out.print_json(reply.model_dump_json())
        return
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.0f}" for k, v in reply.timings.items())
    table = Table(title=f"'{query}' in {collection} ({reply.took_ms:.0f} ms: {stages})", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    hybrid = mode == "hybrid"
    if hybrid:
        table.add_column("dense", justify="right")
        table.add_column("lexical", justify="right")
    if reply.reranked_by:
        table.add_column("was", justify="right")
    table.add_column("id")
    table.add_column("title / text", overflow="fold")
    for rank, hit in enumerate(reply.hits, start=1):
        body = hit.title or ""
        snippet = (hit.text or "")[:160]
        was = [f"#{hit.first_stage_rank}"] if reply.reranked_by else []
        stage = [_stage(hit.stage_scores, "dense"), _stage(hit.stage_scores, "lexical")] if hybrid else []
        table.add_row(
            str(rank),
            f"{hit.score:.4f}",
            *stage,
            *was,
            hit.id,
            f"[bold]{body}[/]\n{snippet}" if body else snippet,
        )
    out.print(table)


def _stage(scores: dict[str, float], stage: str) -> str:
    """A hybrid hit's score in one stage, or a dash when it was not among that stage's candidates."""
    return f"{scores[stage]:.4f}" if stage in scores else "-"
