"""`counterpoint eval-retrieval` and `eval-generation`: score a collection's search or the LM's decoding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli import shared
from counterpoint.cli.shared import FUSION, err, out
from counterpoint.errors import InvalidInput
from counterpoint.schemas import Fusion, RetrievalMode
from counterpoint.settings import get_settings


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
    rerank_fusion: Annotated[float | None, FUSION] = None,
    mode: Annotated[
        RetrievalMode, typer.Option(help="dense, lexical (BM25) or hybrid (both, fused).")
    ] = "dense",
    fusion: Annotated[Fusion, typer.Option(help="hybrid: dbsf or rrf.")] = "dbsf",
    lexical_weight: Annotated[
        float | None, typer.Option(min=0, max=1, help="hybrid with --fusion rrf: the lexical share (0.5).")
    ] = None,
    mmr: Annotated[float | None, typer.Option(min=0, max=1, help="MMR diversity, 0-1.")] = None,
) -> None:
    """nDCG@10, Recall@100 and MRR@10 of a collection against relevance judgements, searched in a
    given mode (dense, lexical, hybrid), optionally diversified and reranked."""
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
    with shared.progress(f"searching {len(texts)} queries") as bar:
        task = bar.add_task("eval", total=len(texts))
        run = cli.client().search_many(
            collection, texts, top_k=top_k, on_progress=lambda n: bar.advance(task, n),
            rerank=rerank, rerank_top_k=rerank_top_k, rerank_fusion=rerank_fusion,
            mode=mode, fusion=fusion, lexical_weight=lexical_weight, mmr=mmr,
        )  # fmt: skip
    metrics = evaluate_run(run, judged)
    how = {"mode": mode, "rerank": rerank}
    if mode == "hybrid":
        how |= {"fusion": fusion, "lexical_weight": lexical_weight}
    if mmr is not None:
        how["mmr"] = mmr
    if as_json:
        out.print_json(json.dumps({**metrics.as_dict(), **how}))
        return
    said = ", ".join(f"{k} {v}" for k, v in how.items() if v not in (None, False))
    table = Table(title=f"{collection} ({said}): {metrics.n_queries} queries")
    for name in ("nDCG@10", "Recall@100", "MRR@10"):
        table.add_column(name, justify="right")
    table.add_row(f"{metrics.ndcg_at_10:.2f}", f"{metrics.recall_at_100:.2f}", f"{metrics.mrr_at_10:.2f}")
    out.print(table)


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
    cp = cli.client()
    with shared.progress(f"{len(chosen)} methods x {len(items)} prompts") as bar:
        task = bar.add_task("generate", total=len(chosen) * len(items))
        results = evaluate_generation(
            cp, items, chosen, max_tokens=max_tokens, chat=not raw, coherence=coherence,
            on_progress=lambda n: bar.advance(task, n),
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
