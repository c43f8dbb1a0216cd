"""Search at scale: a million 384-d vectors in the embedded engine, with the graph the platform builds itself.

For each kind of data (``clustered``: a mixture of Gaussians, like text embeddings; ``uniform``: random
unit vectors, the hardest case for a graph index) it creates a collection with the store's default
settings and a keyword (``tag``, 100 values: a 1 % filter) and a numeric (``score`` in [0, 1): a 10 %
filter) payload field, upserts the vectors in batches of ``--batch`` (the store's ``upsert``, what the
gateway's bulk vector upload ends in), then waits for the background indexer (the platform's
``IndexPolicy``) to build the HNSW graph. It prints:

* upload vectors/s, index build time (from the last upsert until ``index_status`` is ``ready`` with
  every point in the graph), resident memory (this process and the build's child at their peaks,
  and this process after the build) and disk (allocated blocks of the collection's directory);
* search p50/p99 in ms, unfiltered and filtered (1 % and 10 %), and recall@10 against exact search,
  with the collection's default settings and at the ``hnsw_ef`` that ``check_recall``'s ladder
  suggests (the smallest reaching 0.98).

Queries are held-out vectors of the same distribution (not stored points, which a graph finds too
easily); the exact top 10 of each is computed with numpy over the same vectors, regenerated chunk by
chunk from their seeds so the whole set is never in this process's memory. Targets (issue #18, 2 cores):
recall@10 >= 0.98 clustered and >= 0.95 uniform at defaults, p50 <= 5 ms (filtered too), upload
>= 20k vectors/s, build <= 20 min, memory <= 2.5 GB.

    .venv/bin/python bench/bench_scale.py                        # 1M of each kind: about an hour
    .venv/bin/python bench/bench_scale.py --n 100000 --kinds uniform
    .venv/bin/python bench/bench_scale.py --kinds clustered --on-disk off   # full vectors in RAM
    .venv/bin/python bench/bench_scale.py --kinds clustered --datatype float16  # half-size, in RAM
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import get_args

import numpy as np
import psutil
from _machine import cpu_name

from counterpoint.infra.vectors import CollectionSpec, EdgeVectorStore, VectorRecord
from counterpoint.infra.vectors.base import IndexSettings, SearchMode
from counterpoint.infra.vectors.edge import IndexPolicy
from counterpoint.infra.vectors.recall import EF_LADDER, TARGET_RECALL
from counterpoint.schemas import Condition, Filter, Range, VectorDatatype

DIM = 384
CHUNK = 50_000  # vectors generated (and searched exactly) at a time
TAGS = 100
TARGETS = {"recall_clustered": 0.98, "recall_uniform": 0.95, "p50_ms": 5.0, "upload": 20_000.0}
BUILD_TARGET_S = 20 * 60
MEMORY_TARGET_GB = 2.5
ON_DISK = {"default": None, "on": True, "off": False}


# --- data: deterministic chunks, never the whole set at once ----------------------------------


@dataclass(frozen=True)
class Chunk:
    start: int
    vectors: np.ndarray  # unit rows
    tags: np.ndarray  # int, 0..TAGS-1
    scores: np.ndarray  # float in [0, 1)


class Dataset:
    """``n`` vectors of one ``kind``, regenerated chunk by chunk from a seed per chunk."""

    def __init__(self, kind: str, n: int, seed: int = 0) -> None:
        self.kind, self.n, self.seed = kind, n, seed
        rng = np.random.default_rng(seed)
        self.centres = _unit(rng.standard_normal((1000, DIM)).astype(np.float32))

    def _draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.kind == "clustered":
            noise = 0.05 * rng.standard_normal((size, DIM)).astype(np.float32)
            return _unit(self.centres[rng.integers(0, len(self.centres), size)] + noise)
        return _unit(rng.standard_normal((size, DIM)).astype(np.float32))

    def chunks(self) -> Iterator[Chunk]:
        for start in range(0, self.n, CHUNK):
            rng = np.random.default_rng([self.seed, start])
            size = min(CHUNK, self.n - start)
            yield Chunk(start, self._draw(rng, size), rng.integers(0, TAGS, size), rng.random(size))

    def queries(self, count: int) -> np.ndarray:
        """Held-out vectors of the same distribution."""
        return self._draw(np.random.default_rng([self.seed, 2**31]), count)

    def stored(self, count: int) -> np.ndarray:
        """``count`` of the stored vectors, evenly spaced (the queries ``check-recall`` uses)."""
        rows = set(range(0, self.n, max(1, self.n // count)))
        picked = [
            c.vectors[i - c.start]
            for c in self.chunks()
            for i in range(c.start, c.start + len(c.vectors))
            if i in rows
        ]
        return np.stack(picked[:count])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


FILTERS: dict[str, Filter | None] = {
    "none": None,
    "1%": Filter(must=[Condition(key="tag", match="t7")]),
    "10%": Filter(must=[Condition(key="score", range=Range(lt=0.1))]),
}


def _mask(name: str, chunk: Chunk) -> np.ndarray:
    if name == "1%":
        return chunk.tags == 7
    if name == "10%":
        return chunk.scores < 0.1
    return np.ones(len(chunk.tags), bool)


def exact_top(data: Dataset, queries: np.ndarray, k: int) -> dict[str, list[set[str]]]:
    """Per filter, the ids of each query's exact top ``k`` (streaming over the chunks)."""
    best = {name: (np.full((len(queries), 0), -np.inf), np.zeros((len(queries), 0), int)) for name in FILTERS}
    for chunk in data.chunks():
        scores = queries @ chunk.vectors.T
        for name in FILTERS:
            masked = np.where(_mask(name, chunk)[None, :], scores, -np.inf)
            top = np.argpartition(-masked, k, axis=1)[:, :k]
            s, i = best[name]
            s = np.concatenate([s, np.take_along_axis(masked, top, 1)], 1)
            i = np.concatenate([i, top + chunk.start], 1)
            keep = np.argsort(-s, axis=1)[:, :k]
            best[name] = (np.take_along_axis(s, keep, 1), np.take_along_axis(i, keep, 1))
    return {name: [{str(j) for j in row} for row in i] for name, (_, i) in best.items()}


# --- measurements ------------------------------------------------------------------------------


class PeakMemory:
    """Samples this process's and its children's resident memory every 0.2 s; keeps the peaks."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.peak_self = self.peak_child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak_self = max(self.peak_self, self.me.memory_info().rss)
                for child in self.me.children(recursive=True):
                    self.peak_child = max(self.peak_child, child.memory_info().rss)
            except psutil.Error:
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def disk_bytes(path: Path) -> int:
    """Allocated bytes under ``path`` (preallocated but unwritten pages do not count)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


@dataclass
class SearchStats:
    recall: float
    p50_ms: float
    p99_ms: float
    faults: float  # major page faults per search: pages read from disk, cold after a build


def run_searches(
    store: EdgeVectorStore, queries: np.ndarray, truth: list[set[str]], filt: Filter | None, ef: int | None
) -> SearchStats:
    mode = SearchMode(hnsw_ef=ef) if ef else None
    times, hits = [], 0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
    for vector, want in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = store.search("scale", vector, 10, filt, mode)
        times.append((time.perf_counter() - started) * 1000)
        hits += len(want & {rec.id for rec in found})
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_majflt - faults
    times.sort()
    return SearchStats(
        hits / sum(len(t) for t in truth),
        statistics.median(times),
        times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
        faults / len(queries),
    )


def suggest_ef(store: EdgeVectorStore, queries: np.ndarray, truth: list[set[str]], label: str) -> int | None:
    """The smallest ef of ``check_recall``'s ladder reaching its target on the unfiltered queries
    (each ef's recall printed as it goes)."""
    for ef in EF_LADDER:
        stats = run_searches(store, queries, truth, None, ef)
        print(
            f"  {label} queries, hnsw_ef={ef}: recall@10 {stats.recall:.3f}, p50 {stats.p50_ms:.2f} ms, "
            f"{stats.faults:.1f} major faults per search"
        )
        if stats.recall >= TARGET_RECALL:
            return ef
    return None


def run_kind(kind: str, args: argparse.Namespace, root: Path) -> None:
    data = Dataset(kind, args.n)
    print(f"\n== {kind}: {args.n:,} x {DIM} ==", flush=True)
    started = time.perf_counter()
    sets = {"held-out": data.queries(args.queries), "stored": data.stored(args.queries)}
    truth = {label: exact_top(data, queries, 10) for label, queries in sets.items()}
    print(f"exact top-10 of 2 x {args.queries} queries: {time.perf_counter() - started:.1f} s", flush=True)

    memory = PeakMemory()
    store = EdgeVectorStore(root / kind, auto_index=IndexPolicy(min_points=args.min_points))
    store.create_collection(
        CollectionSpec(
            "scale",
            DIM,
            "cosine",
            payload_indexes={"tag": "keyword", "score": "float"},
            index=IndexSettings(on_disk=ON_DISK[args.on_disk], datatype=args.datatype),
        )
    )
    upload_s = 0.0
    for chunk in data.chunks():
        records = [
            VectorRecord(
                str(chunk.start + i), chunk.vectors[i], {"tag": f"t{chunk.tags[i]}", "score": float(s)}
            )
            for i, s in enumerate(chunk.scores)
        ]
        started = time.perf_counter()
        for i in range(0, len(records), args.batch):
            store.upsert("scale", records[i : i + args.batch])
        upload_s += time.perf_counter() - started
        print(f"\r  uploaded {chunk.start + len(records):,}", end="", flush=True)
    last_write = time.perf_counter()
    upload_rate = args.n / upload_s
    print(f"\rupload: {upload_rate:,.0f} vectors/s ({upload_s:.1f} s)          ", flush=True)

    while True:  # the background indexer builds once writes pause for its idle_s
        status = store.index_status("scale")
        if status["state"] == "ready" and status["indexed_vectors"] >= args.n:
            break
        if time.perf_counter() - last_write > args.build_timeout:
            print(f"build did not finish within {args.build_timeout} s: {status}")
            break
        time.sleep(1.0)
    build_s = time.perf_counter() - last_write
    print(
        f"index build: {build_s:.0f} s ({status['indexed_vectors']:,} of {status['points']:,} in the graph)"
    )

    ef = suggest_ef(store, sets["held-out"], truth["held-out"]["none"], "held-out") or suggest_ef(
        store, sets["stored"], truth["stored"]["none"], "stored"
    )
    rows: dict[tuple[str, str, str], SearchStats] = {}
    for label, queries in sets.items():
        for name, filt in FILTERS.items():
            want = truth[label][name]
            run_searches(store, queries[:20], want[:20], filt, None)  # warm the caches
            rows[label, name, "defaults"] = run_searches(store, queries, want, filt, None)
            if ef:
                rows[label, name, f"hnsw_ef={ef}"] = run_searches(store, queries, want, filt, ef)
    memory.stop()
    info = memory.me.memory_info()
    rss_after, anon_after = info.rss, info.rss - info.shared  # shared: file-backed pages (memory-mapped)
    disk = disk_bytes(root / kind)
    store.close()

    print(
        f"{'queries':<10}{'filter':<8}{'setting':<14}{'recall@10':>10}{'p50 ms':>9}{'p99 ms':>9}{'majflt/q':>10}"
    )
    for (label, name, setting), stats in rows.items():
        print(
            f"{label:<10}{name:<8}{setting:<14}{stats.recall:>10.3f}{stats.p50_ms:>9.2f}{stats.p99_ms:>9.2f}"
            f"{stats.faults:>10.1f}"
        )
    gb = 1024**3
    print(f"suggested hnsw_ef (recall >= {TARGET_RECALL}, held-out queries, else stored): {ef}")
    print(f"memory: peak {memory.peak_self / gb:.2f} GB this process, {memory.peak_child / gb:.2f} GB build child, "
          f"{rss_after / gb:.2f} GB after the build ({anon_after / gb:.2f} GB of it not file-backed); "
          f"disk {disk / gb:.2f} GB")  # fmt: skip
    target = TARGETS[f"recall_{kind}"]
    worst_p50 = max(stats.p50_ms for (_, _, setting), stats in rows.items() if setting == "defaults")
    checks = [
        *(
            (f"recall@10 at defaults >= {target} ({label} queries)", rows[label, "none", "defaults"].recall >= target,
             f"{rows[label, 'none', 'defaults'].recall:.3f}")
            for label in sets
        ),
        (f"p50 <= {TARGETS['p50_ms']} ms at defaults (worst filter)", worst_p50 <= TARGETS["p50_ms"],
         f"{worst_p50:.2f} ms"),
        (f"upload >= {TARGETS['upload']:,.0f}/s", upload_rate >= TARGETS["upload"], f"{upload_rate:,.0f}/s"),
        (f"build <= {BUILD_TARGET_S // 60} min", build_s <= BUILD_TARGET_S, f"{build_s / 60:.1f} min"),
        (f"memory <= {MEMORY_TARGET_GB} GB (after the build)", rss_after / gb <= MEMORY_TARGET_GB,
         f"{rss_after / gb:.2f} GB"),
    ]  # fmt: skip
    for what, ok, value in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {what}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors per kind")
    parser.add_argument("--kinds", default="clustered,uniform", help="comma-separated: clustered, uniform")
    parser.add_argument("--queries", type=int, default=200, help="held-out queries per kind")
    parser.add_argument("--batch", type=int, default=1000, help="vectors per upsert")
    parser.add_argument(
        "--min-points", type=int, default=IndexPolicy().min_points, help="the indexer's threshold"
    )
    parser.add_argument(
        "--on-disk", choices=list(ON_DISK), default="default",
        help="full vectors on disk (default: the store's, on with quantization) or in RAM (off)",
    )  # fmt: skip
    parser.add_argument(
        "--datatype", choices=get_args(VectorDatatype), default=None,
        help="how the full vectors are stored (default: the store's, float32); float16 keeps them in RAM",
    )  # fmt: skip
    parser.add_argument("--build-timeout", type=float, default=3600.0, help="seconds to wait for the graph")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the collections go (default: a temp dir)"
    )
    args = parser.parse_args()
    print(f"bench_scale {date.today()} on {cpu_name()}, {os.cpu_count()} CPUs; on_disk {args.on_disk}, "
          f"datatype {args.datatype or 'default'}")  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for kind in args.kinds.split(","):
            run_kind(kind.strip(), args, Path(tmp))


if __name__ == "__main__":
    main()
