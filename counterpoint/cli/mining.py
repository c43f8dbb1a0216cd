"""`counterpoint mine`: hard negatives for a BEIR split, written as triplet JSONL.

The mining itself lives in `counterpoint.workers.mining` (`mine_beir`, `mine_collection`); this
module checks the options, shows progress and prints the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from counterpoint import cli
from counterpoint.cli import shared
from counterpoint.cli.shared import err, out
from counterpoint.errors import InvalidInput
from counterpoint.settings import get_settings


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
    from counterpoint.workers.mining import MiningOptions, mine_beir, mine_collection

    root = beir or default_scifact_dir()
    if not (root / "qrels").is_dir():
        raise InvalidInput(f"--beir {root}: not a BEIR directory (no qrels/ inside)")
    qrels_file = root / "qrels" / f"{split}.tsv"
    if not (qrels_file.exists() or qrels_file.with_name(qrels_file.name + ".gz").exists()):
        raise InvalidInput(f"--split {split}: no {qrels_file.name} in {root / 'qrels'}")
    options = MiningOptions(
        top_k=top_k, skip_top=skip_top, max_score_ratio=max_score_ratio, negatives=negatives
    )
    if collection is None:
        from counterpoint.infra.tracking import local_model

        settings = get_settings()
        model = local_model(model, settings.tracking_uri, settings.models_dir / "registry", where="--model")
        label = "embedding the corpus"
    else:
        cp = cli.client()
        label = f"searching '{collection}' ({cp.get_collection(collection).count} documents)"
    with shared.progress(label) as bar:
        task = bar.add_task("mine", total=None)

        def moved(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        if collection is None:
            triplets, report = mine_beir(
                root, split, model=model, max_seq_length=max_seq_length, progress=moved, **options
            )
        else:
            triplets, report = mine_collection(cp, collection, root, split, progress=moved, **options)
    _write_triplets(triplets, report, out_path, max_score_ratio)


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
