"""Filtered vector search: latency and recall@k of the edge store vs qdrant-client local mode.

Builds both backends from the same random vectors (``category`` keyword with 10 values,
``year`` integer over 35 years), optimizes the edge store so its HNSW graph exists, then runs
the same filtered queries through the ``VectorStore`` API of each and compares every answer
with exact numpy search under the same filter. Latency is the wall time of ``store.search``.

    .venv/bin/python bench/bench_vector_search.py              # 100k x 384-d, ~5-10 min
    .venv/bin/python bench/bench_vector_search.py --n 20000 --backends edge
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from counterpoint.infra.vectors import (
    CollectionSpec,
    EdgeTuning,
    EdgeVectorStore,
    QdrantVectorStore,
    VectorRecord,
)
from counterpoint.infra.vectors.base import VectorStore
from counterpoint.schemas import Condition, Filter, MatchAny, Range

N_CATEGORIES = 10
YEARS = (1990, 2025)  # half-open
COLLECTION = "bench"


@dataclass(frozen=True)
class Query:
    template: str
    vector: np.ndarray
    filter: Filter
    truth: list[int]  # exact top-k row numbers under the filter


@dataclass
class Result:
    backend: str
    ingest_s: float
    optimize_s: float
    latencies_ms: dict[str, list[float]]
    recalls: dict[str, list[float]]


# --- data ------------------------------------------------------------------------------------


def make_vectors(n: int, dim: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors: ``uniform`` (isotropic Gaussian, the hardest case for graph indexes) or
    ``clustered`` (1000 centres plus noise, closer to what text embeddings look like)."""
    if kind == "clustered":
        centres = rng.standard_normal((1000, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
        x = centres[rng.integers(0, len(centres), n)] + 0.05 * rng.standard_normal((n, dim)).astype(
            np.float32
        )
    else:
        x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_queries(
    x: np.ndarray,
    cats: np.ndarray,
    years: np.ndarray,
    count: int,
    top_k: int,
    kind: str,
    rng: np.random.Generator,
) -> list[Query]:
    """``count`` queries cycling through five filter templates, with exact answers."""

    def category(rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        c = int(rng.integers(N_CATEGORIES))
        return Filter(must=[Condition(key="category", match=f"c{c}")]), cats == c

    def category_any(rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        a, b = (int(v) for v in rng.choice(N_CATEGORIES, 2, replace=False))
        flt = Filter(must=[Condition(key="category", match=MatchAny(any=[f"c{a}", f"c{b}"]))])
        return flt, np.isin(cats, [a, b])

    def year_range(rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        y = int(rng.integers(YEARS[0], YEARS[1] - 5))
        return Filter(must=[Condition(key="year", range=Range(gte=y, lt=y + 5))]), (years >= y) & (
            years < y + 5
        )

    def category_and_year(rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        c, y = int(rng.integers(N_CATEGORIES)), int(rng.integers(YEARS[0], YEARS[1] - 10))
        flt = Filter(
            must=[Condition(key="category", match=f"c{c}"), Condition(key="year", range=Range(gte=y))]
        )
        return flt, (cats == c) & (years >= y)

    def category_not(rng: np.random.Generator) -> tuple[Filter, np.ndarray]:
        c = int(rng.integers(N_CATEGORIES))
        return Filter(must_not=[Condition(key="category", match=f"c{c}")]), cats != c

    templates: list[tuple[str, Callable[[np.random.Generator], tuple[Filter, np.ndarray]]]] = [
        ("category (10%)", category),
        ("category any-of-2 (20%)", category_any),
        ("year 5-year range (14%)", year_range),
        ("category + year>= (3-10%)", category_and_year),
        ("must_not category (90%)", category_not),
    ]
    if kind == "clustered":  # queries near the data, as real queries are
        q = x[rng.integers(0, len(x), count)] + 0.05 * rng.standard_normal((count, x.shape[1])).astype(
            np.float32
        )
    else:
        q = rng.standard_normal((count, x.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    queries = []
    for i, vector in enumerate(q):
        name, build = templates[i % len(templates)]
        flt, mask = build(rng)
        rows = np.nonzero(mask)[0]
        scores = x[rows] @ vector
        best = rows[np.argsort(-scores)[:top_k]]
        queries.append(Query(name, vector, flt, best.tolist()))
    return queries


# --- running ---------------------------------------------------------------------------------


def fill(store: VectorStore, x: np.ndarray, cats: np.ndarray, years: np.ndarray, batch: int = 1000) -> float:
    spec = CollectionSpec(COLLECTION, x.shape[1], "cosine", {"category": "keyword", "year": "integer"})
    store.create_collection(spec)
    start = time.perf_counter()
    for lo in range(0, len(x), batch):
        hi = min(lo + batch, len(x))
        store.upsert(
            COLLECTION,
            [
                VectorRecord(str(i), x[i], {"category": f"c{cats[i]}", "year": int(years[i])})
                for i in range(lo, hi)
            ],
        )
    return time.perf_counter() - start


def run_queries(store: VectorStore, queries: list[Query], top_k: int, warmup: int) -> tuple[dict, dict]:
    for q in queries[:warmup]:  # touch the mmapped segments and graph once
        store.search(COLLECTION, q.vector, top_k, q.filter)
    latencies: dict[str, list[float]] = {}
    recalls: dict[str, list[float]] = {}
    for q in queries:
        start = time.perf_counter()
        hits = store.search(COLLECTION, q.vector, top_k, q.filter)
        latencies.setdefault(q.template, []).append((time.perf_counter() - start) * 1000)
        got = {int(h.id) for h in hits}
        recalls.setdefault(q.template, []).append(len(got & set(q.truth)) / max(1, min(top_k, len(q.truth))))
    return latencies, recalls


def bench_edge(args: argparse.Namespace, x, cats, years, queries) -> Result:
    tuning = EdgeTuning(
        m=args.m,
        ef_construct=args.ef_construct,
        full_scan_threshold_kb=args.full_scan_kb,
        hnsw_ef=args.hnsw_ef,
        quantization=args.quantization,
        oversampling=args.oversampling,
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as root:
        store = EdgeVectorStore(Path(root), tuning)
        ingest = fill(store, x, cats, years)
        start = time.perf_counter()
        store.optimize(COLLECTION, in_process=args.in_process_optimize)
        optimize = time.perf_counter() - start
        print(f"  edge index status after optimize: {store.index_status(COLLECTION)}", flush=True)
        latencies, recalls = run_queries(store, queries, args.top_k, args.warmup)
        store.close()
    return Result("edge", ingest, optimize, latencies, recalls)


def bench_qdrant_local(args: argparse.Namespace, x, cats, years, queries) -> Result:
    from qdrant_client import QdrantClient

    store = QdrantVectorStore(QdrantClient(":memory:"))
    ingest = fill(store, x, cats, years)
    latencies, recalls = run_queries(store, queries, args.top_k, min(args.warmup, 5))
    store.close()
    return Result("qdrant-local", ingest, 0.0, latencies, recalls)


# --- report ----------------------------------------------------------------------------------


def _row(label: str, lat: list[float], rec: list[float]) -> str:
    return (
        f"  {label:<28} {len(lat):>4}  p50 {np.percentile(lat, 50):9.3f}  p99 {np.percentile(lat, 99):9.3f}"
        f"  mean {np.mean(lat):9.3f}  recall@k {np.mean(rec):.4f}"
    )


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\n{date.today().isoformat()}  {platform.processor() or platform.machine()}  cpus={os.cpu_count()}"
        f"  n={args.n} dim={args.dim} data={args.data} queries={args.queries} top_k={args.top_k}"
    )
    print(
        f"edge tuning: m={args.m} ef_construct={args.ef_construct} hnsw_ef={args.hnsw_ef or 'default'}"
        f" full_scan_kb={args.full_scan_kb} quantization={args.quantization}"
    )
    p50s = {}
    for r in results:
        all_lat = [v for vs in r.latencies_ms.values() for v in vs]
        all_rec = [v for vs in r.recalls.values() for v in vs]
        p50s[r.backend] = float(np.percentile(all_lat, 50))
        print(f"\n{r.backend}: ingest {r.ingest_s:.1f} s, optimize {r.optimize_s:.1f} s  (latency in ms)")
        for template in r.latencies_ms:
            print(_row(template, r.latencies_ms[template], r.recalls[template]))
        print(_row("ALL", all_lat, all_rec))
    if "edge" in p50s and "qdrant-local" in p50s:
        print(f"\np50 ratio qdrant-local / edge: {p50s['qdrant-local'] / p50s['edge']:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="points (default 100000)")
    parser.add_argument("--dim", type=int, default=384, help="dimensions (default 384)")
    parser.add_argument("--queries", type=int, default=200, help="filtered queries per backend")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--data", choices=["uniform", "clustered"], default="uniform")
    parser.add_argument("--backends", default="edge,qdrant", help="comma list of edge, qdrant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    parser.add_argument("--workdir", default=None, help="where the edge store is built (default: temp dir)")
    edge = parser.add_argument_group("edge tuning (see EdgeTuning)")
    edge.add_argument("--m", type=int, default=EdgeTuning.m)
    edge.add_argument("--ef-construct", type=int, default=EdgeTuning.ef_construct)
    edge.add_argument("--hnsw-ef", type=int, default=EdgeTuning.hnsw_ef)
    edge.add_argument("--full-scan-kb", type=int, default=EdgeTuning.full_scan_threshold_kb)
    edge.add_argument(
        "--quantization", action=argparse.BooleanOptionalAction, default=EdgeTuning.quantization
    )
    edge.add_argument("--oversampling", type=float, default=EdgeTuning.oversampling)
    edge.add_argument("--in-process-optimize", action="store_true", help="skip the child-process copy")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    x = make_vectors(args.n, args.dim, args.data, rng)
    cats = rng.integers(0, N_CATEGORIES, args.n)
    years = rng.integers(YEARS[0], YEARS[1], args.n)
    queries = make_queries(x, cats, years, args.queries, args.top_k, args.data, rng)
    print(f"data and exact answers: {time.perf_counter() - start:.1f} s", flush=True)

    results = []
    for backend in args.backends.split(","):
        print(f"building {backend} ...", flush=True)
        bench = bench_edge if backend == "edge" else bench_qdrant_local
        results.append(bench(args, x, cats, years, queries))
    report(results, args)


if __name__ == "__main__":
    main()
