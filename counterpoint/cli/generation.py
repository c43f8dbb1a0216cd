"""`counterpoint generate`: text from the served causal LM, whole or streamed, with any decoding method."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from counterpoint import cli
from counterpoint.cli.shared import err, out
from counterpoint.errors import InvalidInput

DECODING_HELP = "greedy, sampling, contrastive_search or contrastive_decoding."


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
    temperature: Annotated[
        float | None,
        typer.Option(min=0, max=2, help="sampling temperature, 0-2 (0: greedy; set alone: sampling)."),
    ] = None,
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
    cp = cli.client()
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
