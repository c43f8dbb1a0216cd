"""One client's search latency per mode through a running stack: dense, lexical, hybrid, + MMR, + rerank.

Against ``--url`` (e.g. the ``make up`` stack, ``--collection scifact``: the demo collection) or a
private stack of ``bench/_stack.py`` with a new collection of ``--docs`` SciFact abstracts; SciFact
test queries, top 10, one read key, over loopback. Prints p50/p99 over HTTP and the server's own
timings (embed, search, rerank) per mode; ``lexical`` embeds nothing, the others embed the query.
The reference is the dense mode in the same run (the ratio column): what each extra stage costs.

    .venv/bin/python bench/bench_search_modes.py                                   # private stack
    .venv/bin/python bench/bench_search_modes.py --url http://127.0.0.1:8000 --collection scifact
"""

from __future__ import annotations

import argparse
import datetime
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _machine import cpu_name  # noqa: E402
from _stack import api_key, gateway  # noqa: E402
from bench_query_path import Prepared, sequential, server_p50  # noqa: E402
from load import percentile  # noqa: E402

from counterpoint.datasets import default_scifact  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "dense": {},
    "lexical": {"mode": "lexical"},
    "hybrid (dbsf)": {"mode": "hybrid"},
    "hybrid (rrf 0.5)": {"mode": "hybrid", "fusion": "rrf", "lexical_weight": 0.5},
    "hybrid + MMR 0.3": {"mode": "hybrid", "mmr": 0.3},
    "hybrid + rerank top 20": {"mode": "hybrid", "rerank": True, "rerank_top_k": 20},
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running gateway on this machine (default: start a private stack)")
    parser.add_argument("--collection", help="search this existing collection (e.g. scifact)")
    parser.add_argument(
        "--docs", type=int, default=1000, help="abstracts in a new collection (no --collection)"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each mode's measurement")
    args = parser.parse_args()

    queries = list(default_scifact().split_queries("test").values())
    with gateway(args.url) as url:
        admin = api_key(url)
        if not admin:
            raise SystemExit("no admin key: set COUNTERPOINT_API_KEY (or run without --url)")
        stack = Prepared(url, admin, args.collection, args.docs, clients=1)
        path = f"/v1/collections/{stack.collection}/search"
        rerank = any(m["kind"] == "reranker" for m in stack.http.get("/v1/models").json()["data"])
        results = {}
        try:
            key = stack.keys[0]
            sequential(url, path, key, queries, 2.0)  # warm: the key's hash, the model, the engine
            for label, extra in MODES.items():
                if extra.get("rerank") and not rerank:
                    continue
                results[label] = sequential(url, path, key, queries, args.seconds, extra)
        finally:
            stack.close()

    print(f"{datetime.date.today()}  {cpu_name()}, {os.cpu_count()} cores (stack and bench share them)")
    print(
        f"'{stack.collection}' ({stack.count} x {stack.dims}), {len(queries)} SciFact test queries, top 10, 1 client"
    )
    dense = percentile(results["dense"][0], 0.5)
    for label, (latencies, timings) in results.items():
        p50 = percentile(latencies, 0.5)
        print(f"{label:<24} p50 {p50:6.1f} ms  p99 {percentile(latencies, 0.99):6.1f} ms  "
              f"{p50 / dense:4.2f}x dense   server: {server_p50(timings)}")  # fmt: skip
    if not rerank:
        print("(no reranker served: the rerank row is left out; set COUNTERPOINT_RERANK_MODEL)")


if __name__ == "__main__":
    main()
