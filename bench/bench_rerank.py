"""Reranking: /v1/rerank throughput over HTTP vs in-process scoring, and search latency by stage.

1. Throughput. Reference: ``TextReranker.score`` (sentence-transformers' ``CrossEncoder.predict``)
   on the same (query, SciFact abstract) pairs, same model and max length, in this run. The HTTP side
   sends the same pairs as ``--clients`` concurrent ``/v1/rerank`` calls. Target: HTTP pairs/s >= 0.8x.
2. Latency. A collection of ``--docs`` SciFact abstracts; each test query searched with no reranking,
   with the top 20 reranked and with the top 100 reranked; p50/p99 of the whole call and of each stage.

The cross-encoder is the MiniLM transformer with a fresh head unless ``--model`` names a trained one:
speed does not depend on what the head learned.

    .venv/bin/python bench/bench_rerank.py                     # starts a private stack
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from _stack import auth_headers, gateway  # noqa: E402

from counterpoint.datasets import default_scifact, passage_text  # noqa: E402


def fresh_cross_encoder(directory: Path) -> Path:
    from sentence_transformers import CrossEncoder

    from counterpoint.models.paths import packaged_minilm_path

    CrossEncoder(str(packaged_minilm_path()), num_labels=1, max_length=256, device="cpu").save(str(directory))
    return directory


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="gateway of a running stack with a reranker (default: start one)")
    parser.add_argument("--model", type=Path, help="cross-encoder directory (default: MiniLM + fresh head)")
    parser.add_argument("--queries", type=int, default=16, help="queries in the throughput run")
    parser.add_argument("--per-query", type=int, default=20, help="documents reranked per query")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--docs", type=int, default=400, help="collection size for the latency run")
    parser.add_argument("--searches", type=int, default=20, help="queries per latency setting")
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()

    data = default_scifact()
    queries = list(data.split_queries("test").values())
    docs = [
        passage_text(d["title"], d["text"])
        for d in list(data.corpus.values())[: max(args.docs, args.per_query)]
    ]
    model = args.model or fresh_cross_encoder(Path(tempfile.mkdtemp(prefix="cp-ce-")))
    calls = [
        (queries[i], [docs[(i * 7 + j) % len(docs)] for j in range(args.per_query)])
        for i in range(args.queries)
    ]
    pairs = sum(len(d) for _, d in calls)

    from counterpoint.models.reranker import TextReranker

    reranker = TextReranker(str(model), max_length=args.max_length, torch_threads=os.cpu_count())
    reranker.score(*calls[0])  # warm-up
    started = time.perf_counter()
    for query, batch in calls:
        reranker.score(query, batch)
    local = pairs / (time.perf_counter() - started)
    del reranker

    env = {"COUNTERPOINT_RERANK_MODEL": str(model), "COUNTERPOINT_RERANK_MAX_LENGTH": str(args.max_length)}
    with (
        gateway(args.url, env=env) as url,
        httpx.Client(base_url=url, timeout=600, headers=auth_headers(url)) as http,
    ):
        http.post("/v1/rerank", json={"query": calls[0][0], "documents": calls[0][1]}).raise_for_status()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            replies = list(
                pool.map(lambda c: http.post("/v1/rerank", json={"query": c[0], "documents": c[1]}), calls)
            )
        remote = pairs / (time.perf_counter() - started)
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200][
            :1
        ]
        print(f"rerank throughput: HTTP {remote:.1f} pairs/s vs in-process {local:.1f} pairs/s "
              f"= {remote / local:.2f}x (target >= 0.8x; {pairs} pairs, {args.clients} clients)")  # fmt: skip

        http.delete("/v1/collections/bench-rerank")
        http.post("/v1/collections", json={"name": "bench-rerank"}).raise_for_status()
        items = [{"id": str(i), "text": t} for i, t in enumerate(docs[: args.docs])]
        for start in range(0, len(items), 64):
            http.post(
                "/v1/collections/bench-rerank/documents", json={"documents": items[start : start + 64]}
            ).raise_for_status()
        print(f"latency over {args.searches} SciFact test queries, {args.docs} documents (ms):")
        print(f"{'setting':<18}{'p50':>9}{'p99':>9}  stages p50")
        for label, extra in (("vector only", {}), ("rerank top 20", {"rerank": True, "rerank_top_k": 20}),
                             ("rerank top 100", {"rerank": True, "rerank_top_k": 100})):  # fmt: skip
            took, stages = [], {}
            for query in queries[: args.searches]:
                t0 = time.perf_counter()
                reply = http.post(
                    "/v1/collections/bench-rerank/search", json={"query": query, "top_k": 10, **extra}
                )
                took.append((time.perf_counter() - t0) * 1000)
                for key, value in reply.json()["timings"].items():
                    stages.setdefault(key, []).append(value)
            parts = ", ".join(
                f"{k.removesuffix('_ms')} {statistics.median(v):.0f}" for k, v in stages.items()
            )
            print(f"{label:<18}{percentile(took, 0.5):>9.1f}{percentile(took, 0.99):>9.1f}  {parts}")
        http.delete("/v1/collections/bench-rerank")


if __name__ == "__main__":
    main()
