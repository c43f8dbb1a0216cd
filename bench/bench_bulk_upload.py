"""Bulk upload of precomputed vectors: SDK `upload_vectors` of an .npy file through a gateway vs the
vector store's own `upsert` of the same vectors in this process.

Reference: the store's ``upsert`` (the embedded Qdrant engine, what the gateway writes through) of the
same vectors, in batches of the same size, with the same payloads, bracketed before and after the SDK
run. Target (#18): >= 20,000 vectors/s through the SDK for 384-d vectors.

The SDK path is what a user waits for: one checking pass over the file, then base64 batches over HTTP
(two in flight) into the gateway, which checks and upserts them. Without ``--url`` the gateway app runs
in a child process (uvicorn on a free port; no Ray, no model: nothing is embedded), with its own data
directory; background HNSW builds are off in both stores so neither competes for the CPU.

    .venv/bin/python bench/bench_bulk_upload.py                       # 100k x 384-d
    .venv/bin/python bench/bench_bulk_upload.py --n 20000 --batch-size 2000
    .venv/bin/python bench/bench_bulk_upload.py --url http://127.0.0.1:8000   # a running platform
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import numpy as np
from _machine import cpu_name

from counterpoint.infra.processes import free_port

TARGET = 20_000.0  # vectors/s, #18
NO_BUILDS = 1_000_000_000  # index_build_min_points: no background graph build during the bench


def serve(port: int, data_dir: str, dims: int) -> None:
    """The gateway app over a real registry and vector store, with a stand-in model of ``dims`` dimensions."""
    import uvicorn

    from counterpoint.errors import InvalidInput
    from counterpoint.infra.db.registry import Registry
    from counterpoint.infra.vectors.factory import make_vector_store
    from counterpoint.models.embedder import Embeddings
    from counterpoint.schemas import ModelCard
    from counterpoint.services.gateway.app import create_app
    from counterpoint.services.gateway.core import GatewayCore
    from counterpoint.settings import Settings

    card = ModelCard(id="precomputed", dimensions=dims)

    class Precomputed:
        """Names the collection's dimensions; embeds nothing (vector uploads never call it)."""

        async def embed(self, texts: list[str], model: str | None = None) -> Embeddings:
            raise InvalidInput("the bench gateway embeds nothing")

        async def models(self) -> list[ModelCard]:
            return [card]

        async def load(self, model: str) -> ModelCard:
            return card

    settings = Settings(
        data_dir=Path(data_dir), embed_model=card.id, auth_enabled=False, rate_limit="",
        index_build_min_points=NO_BUILDS,
    )  # fmt: skip
    registry = Registry.from_url(settings.db_url)
    store = make_vector_store(settings)
    app = create_app(GatewayCore(settings, registry, store, Precomputed()))  # type: ignore[arg-type]
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, every thread) of process ``pid`` so far; 0 when unknown."""
    if pid is None:
        return 0.0
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@contextlib.contextmanager
def private_gateway(dims: int) -> Iterator[tuple[str, int]]:
    data_dir = tempfile.mkdtemp(prefix="cp-bench-bulk-gw-")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--data-dir", data_dir, "--dims", str(dims)],
        env={**os.environ, "COUNTERPOINT_AUTH_ENABLED": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise SystemExit("the bench gateway exited; see its output above")
            time.sleep(0.1)
        else:
            raise SystemExit("the bench gateway did not start")
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def store_upsert(matrix: np.ndarray, ids: list[str], batch: int) -> tuple[float, float]:
    """Vectors/s of the store's own ``upsert`` (payloads shaped as the gateway stores them), and its
    CPU seconds."""
    from counterpoint.infra.vectors import CollectionSpec, VectorRecord
    from counterpoint.infra.vectors.factory import make_vector_store
    from counterpoint.settings import Settings

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="cp-bench-bulk-store-")), index_build_min_points=NO_BUILDS
    )
    store = make_vector_store(settings)
    try:
        store.create_collection(CollectionSpec("bulk", matrix.shape[1]))
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, len(ids), batch):
            rows = np.asarray(matrix[start : start + batch], dtype=np.float32)
            records = [
                VectorRecord(point, row, {"id": point, "text": None, "title": None})
                for point, row in zip(ids[start : start + batch], rows, strict=True)
            ]
            store.upsert("bulk", records)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert store.count("bulk") == len(ids)
    finally:
        store.close()
    return len(ids) / elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url", help="gateway of a running platform (default: a private one in a child process)"
    )
    parser.add_argument("--n", type=int, default=100_000, help="vectors to upload")
    parser.add_argument(
        "--dims", type=int, default=384, help="dimensions (a running platform's model must match)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=1000, help="vectors per request (and per store upsert)"
    )
    parser.add_argument(
        "--serve", type=int, help=argparse.SUPPRESS
    )  # the child process: gateway on this port
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.data_dir, args.dims)
        return

    from counterpoint.client import Client

    work = Path(tempfile.mkdtemp(prefix="cp-bench-bulk-"))
    matrix = np.random.default_rng(0).standard_normal((args.n, args.dims)).astype(np.float32)
    ids = [f"v{i}" for i in range(args.n)]
    np.save(work / "vectors.npy", matrix)
    (work / "ids.jsonl").write_text("".join(json.dumps({"id": point}) + "\n" for point in ids))
    print(
        f"{date.today()}  {cpu_name()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{args.n:,} x {args.dims}-d float32, batches of {args.batch_size}"
    )

    before, before_cpu = store_upsert(matrix, ids, args.batch_size)
    print(f"store upsert (before): {before:,.0f} vectors/s, {before_cpu:.2f} CPU s")
    with contextlib.ExitStack() as stack:
        key, server = None, None
        if args.url:
            url = args.url
            sys.path.insert(0, str(Path(__file__).parent))
            from _stack import api_key

            key = api_key(url)
        else:
            url, server = stack.enter_context(private_gateway(args.dims))
        client = stack.enter_context(Client(url, api_key=key, timeout=600))
        name = f"bench-bulk-{int(time.time())}"
        client.create_collection(name)
        checked: list[float] = []
        server_cpu, client_cpu = cpu_seconds(server), time.process_time()
        started = time.perf_counter()
        result = client.upload_vectors(
            name, work / "vectors.npy", payloads=work / "ids.jsonl", batch_size=args.batch_size,
            on_checked=lambda _: checked.append(time.perf_counter()),
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = cpu_seconds(server) - server_cpu, time.process_time() - client_cpu
        assert result.indexed == args.n and client.get_collection(name).count == args.n, result
        for row in (0, args.n // 2, args.n - 1):
            assert client.search(name, vector=matrix[row].tolist(), top_k=1).hits[0].id == ids[row]
        if args.url:
            client.delete_collection(name)
    after, after_cpu = store_upsert(matrix, ids, args.batch_size)
    print(f"store upsert (after):  {after:,.0f} vectors/s, {after_cpu:.2f} CPU s")

    sdk = args.n / elapsed
    store = (before + after) / 2
    check_s = checked[0] - started
    print(
        f"SDK upload_vectors:    {sdk:,.0f} vectors/s ({elapsed:.2f} s: file check {check_s:.2f} s, "
        f"sending {elapsed - check_s:.2f} s at {args.n / (elapsed - check_s):,.0f} vectors/s)"
    )
    gateway_cpu = f"gateway {server_cpu:.2f} CPU s, " if server is not None else ""
    print(
        f"  CPU: {gateway_cpu}SDK process {client_cpu:.2f} CPU s (the store alone: {(before_cpu + after_cpu) / 2:.2f})"
    )
    print(f"ratio SDK / store upsert: {sdk / store:.2f}x")
    print(f"target (#18): >= {TARGET:,.0f} vectors/s through the SDK: {sdk / TARGET:.2f}x of target")


if __name__ == "__main__":
    main()
