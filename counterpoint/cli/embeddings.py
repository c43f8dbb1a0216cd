"""`counterpoint embed` and `rerank`: call the embedding and cross-encoder services directly."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from counterpoint import cli
from counterpoint.cli.shared import err, out


def embed(
    texts: Annotated[list[str], typer.Argument(help="Texts to embed.")],
    model: Annotated[
        str | None, typer.Option(help="Served name, models:/NAME/VERSION or models:/NAME@ALIAS.")
    ] = None,
    dimensions: Annotated[int | None, typer.Option(help="Matryoshka truncation.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full vectors as JSON.")] = False,
) -> None:
    """Embed texts with a served model."""
    reply = cli.client().embed(texts, model=model, dimensions=dimensions)
    if as_json:
        out.print_json(reply.model_dump_json())
        return
    for text, item in zip(texts, reply.data, strict=True):
        vector = item.embedding
        assert isinstance(vector, list)
        head = ", ".join(f"{v:+.4f}" for v in vector[:6])
        out.print(f"[bold]{text[:60]}[/]  dim={len(vector)}  [{head}, ...]")
    out.print(f"model {reply.model}, {reply.usage.total_tokens} tokens")


def rerank(
    query: Annotated[str, typer.Argument(help="The query.")],
    documents: Annotated[list[str], typer.Argument(help="Documents to score.")],
    top_n: Annotated[int | None, typer.Option(help="Show only the best n.")] = None,
    model: Annotated[str | None, typer.Option(help="Cross-encoder (default: the served one).")] = None,
) -> None:
    """Score documents for a query with the cross-encoder, best first."""
    reply = cli.client().rerank(query, documents, top_n=top_n, model=model)
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
