"""Decoding methods on SmolLM2-135M-Instruct (CPU): speed of contrastive search, and quality.

Speed: time per generated token of contrastive search (k candidates scored in one batched
forward pass) against greedy search, on the same prompts, for the same number of tokens
(EOS ignored, so every run generates exactly --max-new-tokens), in this same run, each
prompt's runs back to back. Target: contrastive search <= 1.5x greedy per token.

Quality (Su et al. 2022): rep-2/3/4 (% repeated n-grams, pooled over prompts, whitespace
tokens), diversity = prod(1 - rep-n/100), and with --coherence the cosine between the prompt
and the continuation under all-MiniLM-L6-v2. Each continuation is cut at its first EOS: for
these methods the tokens before it are exactly what an EOS-stopping run produces.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from counterpoint.decoding import (  # noqa: E402
    SMOLLM2_NAME,
    encode_prompt,
    eos_token_ids,
    generate,
    load_causal_lm,
    load_prompts,
)
from counterpoint.decoding.metrics import summarize  # noqa: E402

METHODS = ("greedy", "sampling", "contrastive_search", "contrastive_decoding")


def timed_run(
    model, tokenizer, prompt_ids: list[int], method: str, options: dict
) -> tuple[list[int], list[float]]:
    """Generate; return the tokens and the time (s) at which each arrived, from the call."""
    start = time.perf_counter()
    tokens: list[int] = []
    stamps: list[float] = []
    for token in generate(model, tokenizer, prompt_ids, method, stop_on_eos=False, **options):
        tokens.append(token)
        stamps.append(time.perf_counter() - start)
    return tokens, stamps


def cut_at_eos(tokens: list[int], eos: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in eos:
            return tokens[:i]
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=SMOLLM2_NAME, help="SmolLM2-135M-Instruct or a local causal-LM dir"
    )
    parser.add_argument(
        "--cache-dir", help="converted-model cache (default <data_dir>/models/smollm2-135m-instruct)"
    )
    parser.add_argument("--prompts", help="JSONL of {id, prompt} (default: the shipped set)")
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=4, help="contrastive search candidates")
    parser.add_argument("--penalty-alpha", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95, help="sampling nucleus")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--cd-alpha", type=float, default=0.1)
    parser.add_argument("--amateur-layers", type=int, help="default: half of the layers")
    parser.add_argument("--amateur-temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--coherence", action="store_true", help="also coherence, with all-MiniLM-L6-v2")
    parser.add_argument("--no-chat", action="store_true", help="raw prompts, no chat template")
    parser.add_argument("--show", type=int, default=1, help="print this many continuations per method")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model, tokenizer = load_causal_lm(args.model, args.cache_dir)
    print(
        f"model {args.model} loaded in {time.perf_counter() - started:.1f}s; torch threads {torch.get_num_threads()}"
    )

    prompts = load_prompts(args.prompts)[: args.num_prompts]
    encoded = [encode_prompt(tokenizer, p["prompt"], chat=False if args.no_chat else None) for p in prompts]
    eos = eos_token_ids(model, tokenizer)
    options = {
        "greedy": {},
        "sampling": {"temperature": args.temperature, "top_p": args.top_p, "seed": args.seed},
        "contrastive_search": {"top_k": args.top_k, "penalty_alpha": args.penalty_alpha},
        "contrastive_decoding": {
            "cd_alpha": args.cd_alpha,
            "amateur_layers": args.amateur_layers,
            "amateur_temperature": args.amateur_temperature,
        },
    }
    for method in args.methods:
        options[method]["max_new_tokens"] = args.max_new_tokens
    methods = [m for m in METHODS if m in args.methods]

    timed_run(model, tokenizer, encoded[0], "greedy", {"max_new_tokens": 4})  # warm-up
    timed_run(model, tokenizer, encoded[0], "contrastive_search", {"max_new_tokens": 4, "top_k": args.top_k})

    total: dict[str, float] = dict.fromkeys(methods, 0.0)
    steady: dict[str, float] = dict.fromkeys(methods, 0.0)
    counts: dict[str, int] = dict.fromkeys(methods, 0)
    texts: dict[str, list[str]] = {m: [] for m in methods}
    for i, ids in enumerate(encoded):
        for method in methods:  # one prompt's runs back to back: load drift hits every method alike
            tokens, stamps = timed_run(model, tokenizer, ids, method, options[method])
            total[method] += stamps[-1]
            steady[method] += stamps[-1] - stamps[0]
            counts[method] += len(tokens)
            texts[method].append(tokenizer.decode(cut_at_eos(tokens, eos), skip_special_tokens=True).strip())
        print(f"  prompt {i + 1}/{len(encoded)} done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)

    embed = None
    if args.coherence:
        from counterpoint.models.embedder import TextEmbedder

        embed = TextEmbedder("all-MiniLM-L6-v2").embed
    raw_prompts = [p["prompt"] for p in prompts]

    n, t = len(encoded), args.max_new_tokens
    print(
        f"\n{n} prompts x {t} new tokens (EOS ignored for timing), prompt lengths {min(map(len, encoded))}-"
        f"{max(map(len, encoded))} tokens\n"
    )
    header = f"{'method':<22}{'ms/token':>10}{'ms/token*':>11}{'rep-2':>8}{'rep-3':>8}{'rep-4':>8}{'diversity':>11}"
    header += f"{'coherence':>11}{'words':>7}" if embed else f"{'words':>7}"
    print(header)
    results = {}
    for method in methods:
        per_token = 1000 * total[method] / counts[method]
        per_token_steady = 1000 * steady[method] / max(1, counts[method] - n)
        metrics = summarize(texts[method], raw_prompts, embed)
        results[method] = {
            "ms_per_token": per_token,
            "ms_per_token_steady": per_token_steady,
            **metrics.as_dict(),
        }
        row = f"{method:<22}{per_token:>10.1f}{per_token_steady:>11.1f}{metrics.rep_2:>8.2f}{metrics.rep_3:>8.2f}"
        row += f"{metrics.rep_4:>8.2f}{metrics.diversity:>11.3f}"
        row += f"{metrics.coherence:>11.3f}" if metrics.coherence is not None else ""
        print(row + f"{metrics.mean_tokens:>7.1f}")
    print("  ms/token: whole call (prompt pass included) / tokens; ms/token*: after the first token")

    if "greedy" in results and "contrastive_search" in results:
        ratio = results["contrastive_search"]["ms_per_token"] / results["greedy"]["ms_per_token"]
        ratio_steady = (
            results["contrastive_search"]["ms_per_token_steady"] / results["greedy"]["ms_per_token_steady"]
        )
        verdict = "meets" if ratio <= 1.5 else "MISSES"
        print(
            f"\ncontrastive search (k={args.top_k}) / greedy per token: {ratio:.2f}x "
            f"({ratio_steady:.2f}x after the first token) -- {verdict} the <= 1.5x target"
        )
        results["cs_over_greedy"] = {"ratio": ratio, "ratio_steady": ratio_steady}
    for i in range(min(args.show, n)):
        print(f"\n--- {raw_prompts[i]}")
        for method in methods:
            print(f"[{method}] {texts[method][i][:400]!r}")
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}, indent=2)
        )
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
