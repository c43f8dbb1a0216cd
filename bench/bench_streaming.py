"""Streamed generation over HTTP against in-process generation: tokens/s of the same greedy runs.

HTTP: ``POST /v1/chat/completions`` with ``stream: true`` through the gateway (Ray Serve proxy ->
gateway replica -> decode replica's streaming handle -> server-sent events), timed from sending
the request to ``data: [DONE]``; tokens from the response's usage. In-process: the decoding
library's `stream_text` in this process on the same model, the same chat-template prompt ids and
the same max tokens. Greedy on both sides gives the same tokens, which is checked. Each prompt's
runs alternate, HTTP then in-process, ``--repeats`` times, and each side keeps its fastest run
(on a shared machine the load comes and goes; the minimum is the least disturbed run); the
stack is idle while the in-process run works. Target: HTTP tokens/s >= 0.8 x in-process tokens/s.

    python bench/bench_streaming.py                       # starts a private stack with decoding
    python bench/bench_streaming.py --url http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _stack import DECODE_CACHE, api_key, gateway  # noqa: E402

from counterpoint.client import Client  # noqa: E402
from counterpoint.generation_eval import read_prompts  # noqa: E402

TARGET = 0.8


def http_run(client: Client, prompt: str, max_tokens: int) -> tuple[str, int, float, float]:
    """(text, completion tokens, seconds to the first delta, seconds in all) of one streamed chat."""
    started = time.perf_counter()
    first = 0.0
    with client.stream_chat(prompt, max_tokens=max_tokens) as stream:
        for delta in stream:
            if not first and delta:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
    assert stream.usage is not None
    return stream.text, stream.usage.completion_tokens, first, total


def local_run(model, tokenizer, ids: list[int], max_tokens: int) -> tuple[str, int, float, float]:  # type: ignore[no-untyped-def]
    from counterpoint.decoding import stream_text

    started = time.perf_counter()
    first = 0.0
    stream = stream_text(model, tokenizer, ids, "greedy", max_new_tokens=max_tokens)
    parts = []
    for delta in stream:
        if not first and delta:
            first = time.perf_counter() - started
        parts.append(delta)
    return "".join(parts), stream.generated_tokens, first, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running gateway (default: start a private stack with decoding)")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct", help="the model the gateway serves")
    parser.add_argument(
        "--cache-dir", default=os.environ.get("COUNTERPOINT_DECODE_CACHE_DIR", str(DECODE_CACHE))
    )
    parser.add_argument("--prompts", help="JSONL of {id, prompt} (default: the shipped set)")
    parser.add_argument("--num-prompts", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="runs per prompt and side; the fastest counts")
    args = parser.parse_args()

    import torch

    from counterpoint.decoding import encode_prompt, load_causal_lm

    torch.set_num_threads(os.cpu_count() or 1)  # as the decode replica does
    model, tokenizer = load_causal_lm(args.model, args.cache_dir)
    prompts = [p["prompt"] for p in read_prompts(args.prompts)[: args.num_prompts]]
    encoded = [encode_prompt(tokenizer, p, chat=True) for p in prompts]

    with gateway(args.url, decode=True) as url:
        client = Client(url, api_key=api_key(url), timeout=300)
        served = [m.id for m in client.models() if m.kind == "causal-lm"]
        print(
            f"gateway {url}, serving {served}; in-process {args.model}, torch threads {torch.get_num_threads()}"
        )
        http_run(client, prompts[0], 4)  # warm-up: first calls pay for handles and caches
        local_run(model, tokenizer, encoded[0], 4)

        rows = []
        for i, (prompt, ids) in enumerate(zip(prompts, encoded, strict=True)):
            http_runs, local_runs = [], []
            for _ in range(args.repeats):
                http_runs.append(http_run(client, prompt, args.max_tokens))
                local_runs.append(local_run(model, tokenizer, ids, args.max_tokens))
            h_text, h_tokens, h_first, h_total = min(http_runs, key=lambda r: r[3])
            l_text, l_tokens, l_first, l_total = min(local_runs, key=lambda r: r[3])
            same = h_text == l_text and h_tokens == l_tokens
            rows.append((h_tokens, h_first, h_total, l_tokens, l_first, l_total, same))
            print(
                f"  prompt {i + 1}: http {h_tokens} tok {h_tokens / h_total:6.1f} tok/s (first {h_first * 1000:4.0f} ms)"
                f" | in-process {l_tokens} tok {l_tokens / l_total:6.1f} tok/s (first {l_first * 1000:4.0f} ms)"
                f"{'' if same else '  TEXT DIFFERS'}",
                file=sys.stderr,
            )

    http_tps = sum(r[0] for r in rows) / sum(r[2] for r in rows)
    local_tps = sum(r[3] for r in rows) / sum(r[5] for r in rows)
    ratio = http_tps / local_tps
    per_prompt = statistics.median((r[0] / r[2]) / (r[3] / r[5]) for r in rows)
    print(f"\n{len(rows)} prompts x {args.repeats} runs (fastest kept), greedy, max {args.max_tokens} tokens "
          f"(chat template), same tokens: {all(r[6] for r in rows)}")  # fmt: skip
    print(f"{'':<14}{'tokens/s':>10}{'first delta (median)':>24}")
    print(f"{'HTTP stream':<14}{http_tps:>10.1f}{statistics.median(r[1] for r in rows) * 1000:>21.0f} ms")
    print(f"{'in-process':<14}{local_tps:>10.1f}{statistics.median(r[4] for r in rows) * 1000:>21.0f} ms")
    verdict = "meets" if per_prompt >= TARGET else "MISSES"  # the median resists load spikes
    print(
        f"\nHTTP / in-process tokens/s: {ratio:.2f} (median per prompt {per_prompt:.2f}) -- "
        f"{verdict} the >= {TARGET} target"
    )


if __name__ == "__main__":
    main()
