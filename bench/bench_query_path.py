"""The search path against in-process work, in one run (issue #18 item 5, "a fast query path").

Against a running stack (``--url``, or the private stack of ``bench/_stack.py``), over loopback,
searching SciFact test queries (top 10) in a collection of SciFact abstracts, one read key per client:

1. throughput: ``--clients`` (16) concurrent clients for ``--seconds``, searches/s, vs the same
   work in-process: the base model encoding the same queries in batches of 32 plus an exact numpy
   dot product over a matrix of the searched collection's shape (count x dimensions) and a top 10.
   Target >= 0.7x. Two in-process references: sentence-transformers' torch model (the issue's,
   what a user runs without us), and the model on the backend the stack serves it with
   (``embed_backend``, default ``auto``; ``--backend`` for the private stack), which isolates the
   serving path's cost from the runtime's speed.
2. one client's search p50 vs in-process one query (encode one text + the dot product). Target <= 2x.
3. one client's search p50 while a ``--ingest-docs`` (5,183) SciFact ingest runs into another
   collection (the demo's shape: one client, 32 documents a call) vs idle (2.). Target <= 2x.
   The ingest stops when the measurement ends; the bench deletes what it created.

The server's own ``timings`` (embed_ms, search_ms, took_ms) are printed beside each p50.

    .venv/bin/python bench/bench_query_path.py                 # private stack (a few minutes to start)
    .venv/bin/python bench/bench_query_path.py --url http://127.0.0.1:8000 --collection scifact
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from _machine import cpu_name  # noqa: E402
from _stack import api_key, gateway, in_process_embedder, served_backend  # noqa: E402
from load import percentile  # noqa: E402

from counterpoint.datasets import default_scifact, passage_text  # noqa: E402

SEARCHED = "qp-bench"
INGESTED = "qp-bench-ingest"
TOP_K = 10


Encode = Callable[[list[str]], np.ndarray]
"""Texts -> unit vectors: the in-process reference's encoder."""


def sentence_transformers_encoder() -> Encode:
    """The base model as sentence-transformers runs it (torch), batches of 32: the issue's reference."""
    from sentence_transformers import SentenceTransformer

    from counterpoint.models.paths import packaged_minilm_path

    model = SentenceTransformer(str(packaged_minilm_path()), device="cpu")
    model.max_seq_length = 256
    return lambda texts: model.encode(texts, batch_size=32, normalize_embeddings=True)


def served_runtime_encoder(backend: str) -> Encode:
    """The base model on the stack's backend, as a replica runs it: isolates the serving path's cost."""
    embedder = in_process_embedder(backend, 256, batch_size=32)
    return lambda texts: embedder.embed(texts).vectors


def in_process(
    encode: Encode, queries: list[str], count: int, dims: int, seconds: float
) -> tuple[float, float]:
    """(queries/s in batches of 32, one query's p50 in ms): ``encode`` + exact dot product + top 10."""
    matrix = np.random.default_rng(0).standard_normal((count, dims)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)

    def search(texts: list[str]) -> np.ndarray:
        scores = encode(texts) @ matrix.T
        return np.argpartition(-scores, TOP_K, axis=1)[:, :TOP_K]

    search(queries[:32])  # warm
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or done < len(queries):
        batch = [queries[(done + i) % len(queries)] for i in range(32)]
        search(batch)
        done += len(batch)
    rate = done / (time.perf_counter() - started)
    one: list[float] = []
    for query in queries[:100]:
        t0 = time.perf_counter()
        search([query])
        one.append((time.perf_counter() - t0) * 1000)
    return rate, statistics.median(one)


class Prepared:
    """The stack side: the searched collection, one read key per client, an admin client."""

    def __init__(self, url: str, admin: str, collection: str | None, docs: int, clients: int) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {admin}"})
        self.data = default_scifact()
        self.created: list[str] = []
        self.collection = collection or SEARCHED
        if collection is None:
            self._fill(SEARCHED, list(self.data.corpus.items())[:docs])
        info = self.http.get(f"/v1/collections/{self.collection}")
        info.raise_for_status()
        self.count, self.dims = int(info.json()["count"]), int(info.json()["dimensions"])
        self.keys = []
        for i in range(clients):
            reply = self.http.post("/v1/keys", json={"name": f"qp-bench-{i}", "scopes": ["read"]})
            reply.raise_for_status()
            self.keys.append(reply.json()["key"])

    def _fill(self, name: str, corpus: list[tuple[str, Any]], stop: threading.Event | None = None) -> int:
        if name not in self.created:
            self.http.delete(f"/v1/collections/{name}")
            self.http.post("/v1/collections", json={"name": name}).raise_for_status()
            self.created.append(name)
        items = [{"id": i, "text": passage_text(d["title"], d["text"])} for i, d in corpus]
        sent = 0
        for start in range(0, len(items), 32):
            if stop is not None and stop.is_set():
                break
            reply = self.http.post(
                f"/v1/collections/{name}/documents", json={"documents": items[start : start + 32]}
            )
            reply.raise_for_status()
            sent += len(items[start : start + 32])
        return sent

    def close(self) -> None:
        for record in self.http.get("/v1/keys").json()["keys"]:
            if record["name"].startswith("qp-bench-"):
                self.http.delete(f"/v1/keys/{record['id']}")
        for name in self.created:
            self.http.delete(f"/v1/collections/{name}")
        self.http.close()


def sequential(
    url: str, path: str, key: str, queries: list[str], seconds: float, extra: dict[str, Any] | None = None
) -> tuple[list[float], list[dict]]:
    """One client's latencies (ms) and the server's timings, for ``seconds`` (at least 20 searches);
    ``extra`` goes into every request body (a search mode, rerank, ...)."""
    latencies, timings = [], []
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}) as http:
        started, n = time.perf_counter(), 0
        while time.perf_counter() - started < seconds or n < 20:
            t0 = time.perf_counter()
            reply = http.post(
                path, json={"query": queries[n % len(queries)], "top_k": TOP_K, **(extra or {})}
            )
            if reply.status_code == 429:  # the key's rate limit (a fast mode can pass it): wait, not measured
                time.sleep(float(reply.headers.get("retry-after", "0.1")))
                continue
            reply.raise_for_status()
            latencies.append((time.perf_counter() - t0) * 1000)
            body = reply.json()
            timings.append({**body["timings"], "took_ms": body["took_ms"]})
            n += 1
    return latencies, timings


async def concurrent(
    url: str, path: str, keys: list[str], queries: list[str], seconds: float
) -> tuple[float, int]:
    """(successful searches/s, failures) with one client per key, each on its own connection."""
    ok, failed = [0], [0]
    limits = httpx.Limits(max_connections=len(keys), max_keepalive_connections=len(keys))
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        deadline = time.perf_counter() + seconds

        async def client(i: int, key: str) -> None:
            n = i * 7
            while time.perf_counter() < deadline:
                reply = await http.post(path, json={"query": queries[n % len(queries)], "top_k": TOP_K},
                                        headers={"Authorization": f"Bearer {key}"})  # fmt: skip
                n += 1
                if reply.is_success:
                    ok[0] += 1
                else:
                    failed[0] += 1
                    await asyncio.sleep(float(reply.headers.get("retry-after", "0.1")))

        started = time.perf_counter()
        await asyncio.gather(*(client(i, key) for i, key in enumerate(keys)))
        return ok[0] / (time.perf_counter() - started), failed[0]


def server_p50(timings: list[dict]) -> str:
    names = sorted({name for t in timings for name in t})
    return ", ".join(
        f"{name} {percentile([t[name] for t in timings if name in t], 0.5):.1f}" for name in names
    )


def verdict(ratio: float, target: float, at_least: bool) -> str:
    ok = ratio >= target if at_least else ratio <= target
    return f"{ratio:5.2f}x  (target {'>=' if at_least else '<='} {target}x: {'met' if ok else 'NOT met'})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running gateway on this machine (default: start a private stack)")
    parser.add_argument(
        "--collection", help="search this existing collection (e.g. scifact) instead of a new one"
    )
    parser.add_argument("--docs", type=int, default=1000, help="abstracts in the new searched collection")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measurement")
    parser.add_argument(
        "--ingest-docs", type=int, default=5183, help="size of the ingest that runs in phase 3"
    )
    parser.add_argument("--backend", default="auto", help="the private stack's embed_backend")
    args = parser.parse_args()
    os.environ["COUNTERPOINT_EMBED_BACKEND"] = args.backend

    data = default_scifact()
    queries = list(data.split_queries("test").values())
    with gateway(args.url) as url:
        admin = api_key(url)
        if not admin:
            raise SystemExit("no admin key: set COUNTERPOINT_API_KEY (or run without --url)")
        stack = Prepared(url, admin, args.collection, args.docs, args.clients)
        path = f"/v1/collections/{stack.collection}/search"
        try:
            for key in stack.keys:  # each key's first call verifies its hash: not part of the measurement
                httpx.post(url + path, json={"query": queries[0]}, headers={"Authorization": f"Bearer {key}"},
                           timeout=120).raise_for_status()  # fmt: skip
            sequential(url, path, stack.keys[0], queries, 2.0)  # warm
            print(f"{datetime.date.today()}  {cpu_name()}, {os.cpu_count()} cores (stack and bench share them); "
                  f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
            print(f"searching '{stack.collection}' ({stack.count} x {stack.dims}), {len(queries)} SciFact test "
                  f"queries, top {TOP_K}, one read key per client, {args.seconds:g} s per measurement")  # fmt: skip
            backend = served_backend(url)
            encoders = {"torch": sentence_transformers_encoder(), backend: served_runtime_encoder(backend)}
            refs = {name: [in_process(e, queries, stack.count, stack.dims, args.seconds / 2)] for name, e in encoders.items()}  # fmt: skip
            idle, idle_timings = sequential(url, path, stack.keys[0], queries, args.seconds)
            rate, failed = asyncio.run(concurrent(url, path, stack.keys, queries, args.seconds))

            stop = threading.Event()
            corpus = list(data.corpus.items())[: args.ingest_docs]
            sent: list[int] = []
            ingest = threading.Thread(target=lambda: sent.append(stack._fill(INGESTED, corpus, stop)))
            ingest_started = time.perf_counter()
            ingest.start()
            time.sleep(3.0)  # the ingest is under way
            busy, busy_timings = sequential(url, path, stack.keys[0], queries, args.seconds)
            stop.set()
            ingest.join()
            ingest_rate = sent[0] / (time.perf_counter() - ingest_started) if sent else float("nan")
            for name, encode in encoders.items():
                refs[name].append(in_process(encode, queries, stack.count, stack.dims, args.seconds / 2))
        finally:
            stack.close()

    idle_p50, busy_p50 = percentile(idle, 0.5), percentile(busy, 0.5)
    print(f"the stack serves the model on backend {backend}")
    for name, ref in refs.items():
        ref_rate, ref_one = statistics.mean(r[0] for r in ref), statistics.mean(r[1] for r in ref)
        what = "sentence-transformers (torch)" if name == "torch" else f"the served runtime ({name})"
        print(f"in-process, {what}: {ref_rate:7.1f} queries/s in batches of 32; one query {ref_one:6.1f} ms "
              "(encode + exact dot product + top 10; the mean of a run before and one after the stack's)")  # fmt: skip
        print(f"  throughput, {args.clients} clients : {rate:7.1f} searches/s ({failed} failed)   vs in-process "
              f"{ref_rate:7.1f}/s  {verdict(rate / ref_rate, 0.7, True)}")  # fmt: skip
        print(f"  1 client, idle      : p50 {idle_p50:6.1f} ms, p99 {percentile(idle, 0.99):6.1f} ms  vs in-process "
              f"{ref_one:6.1f} ms  {verdict(idle_p50 / ref_one, 2.0, False)}")  # fmt: skip
    print(f"   server timings p50: {server_p50(idle_timings)}")
    print(f"1 client, ingesting : p50 {busy_p50:6.1f} ms, p99 {percentile(busy, 0.99):6.1f} ms  vs idle "
          f"{idle_p50:6.1f} ms  {verdict(busy_p50 / idle_p50, 2.0, False)}")  # fmt: skip
    print(f"   server timings p50: {server_p50(busy_timings)}; the ingest ran at {ingest_rate:.1f} docs/s")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
