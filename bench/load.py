"""Load: search and embed at rising concurrency, over loopback, until the gateway queues or refuses.

Each level runs ``C`` concurrent clients (httpx async, one connection each) for ``--seconds`` (at
most ``--max-requests`` requests per level), on two routes: ``POST /v1/embeddings`` (a SciFact
test query, a different one each time) and ``POST /v1/collections/load-bench/search`` (top 10 of
``--docs`` SciFact abstracts). The stack is warmed up first (``WARM_UP`` untimed calls per route).
Per level: requests sent, successful ones per second, p50/p99 latency of the successful ones, the
error rate (any answer but 2xx, or no answer), every status code seen, and ``/healthz`` right after
the level (state and latency): it must stay up. A client that gets 429 or 503 waits its
``Retry-After``, as the SDK's callers should, and goes on.

Two key set-ups, both against the stack's default settings (auth on, ``rate_limit`` 50/second per key):

* ``shared``: every client sends the admin key: one tenant, so the per-key limit answers 429;
* ``per-client``: each client has its own read key (created through ``POST /v1/keys``), so the
  rate limit is not what stops them and the service's own capacity (queueing) shows. Each key's
  first call, and the first after ``auth_cache_ttl_s`` (60 s), costs the gateway one argon2
  verification (~10 ms with the light parameters keys use).

Loopback only: the private stack (bench/_stack.py) or ``--url`` on this machine.

    .venv/bin/python bench/load.py                      # starts a private stack (minutes)
    .venv/bin/python bench/load.py --levels 1,4 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx  # noqa: E402
from _stack import api_key, gateway  # noqa: E402

from counterpoint.datasets import default_scifact, passage_text  # noqa: E402

COLLECTION = "load-bench"
WARM_UP = 10  # untimed requests per route before the first level


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Level:
    route: str
    keys: str
    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # of 2xx answers
    statuses: Counter[str] = field(default_factory=Counter)
    health: str = "?"

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if s.startswith("2"))

    def row(self) -> str:
        errors = 100.0 * (self.sent - self.ok) / self.sent if self.sent else 0.0
        codes = " ".join(f"{s}:{n}" for s, n in sorted(self.statuses.items()))
        return (f"{self.route:<7}{self.keys:<11}{self.clients:>4}{self.sent:>7}{self.ok / self.seconds:>8.1f}"
                f"{percentile(self.latencies_ms, 0.5):>9.0f}{percentile(self.latencies_ms, 0.99):>9.0f}"
                f"{errors:>7.1f}%  {codes:<26}{self.health}")  # fmt: skip


HEADER = (f"{'route':<7}{'keys':<11}{'C':>4}{'sent':>7}{'ok/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"  {'status codes':<26}/healthz after")  # fmt: skip


Request = tuple[str, Callable[[int], dict]]  # path, n -> the n-th body


async def client_loop(http: httpx.AsyncClient, level: Level, request: Request, key: str,
                      deadline: float, budget: list[int]) -> None:  # fmt: skip
    path, body = request
    headers = {"Authorization": f"Bearer {key}"}
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        try:
            reply = await http.post(path, json=body(budget[0]), headers=headers)
        except httpx.HTTPError as exc:  # no answer: counted by the exception's name
            level.statuses[type(exc).__name__] += 1
            continue
        level.statuses[str(reply.status_code)] += 1
        if reply.is_success:
            level.latencies_ms.append((time.perf_counter() - started) * 1000)
        elif reply.status_code in (429, 503):
            wait = float(reply.headers.get("retry-after", "1"))
            await asyncio.sleep(max(0.0, min(wait, deadline - time.perf_counter())))


async def run_level(url: str, level: Level, request: Request, keys: list[str], seconds: float,
                    max_requests: int) -> None:  # fmt: skip
    limits = httpx.Limits(max_connections=level.clients, max_keepalive_connections=level.clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        budget = [max_requests]
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(http, level, request, keys[i % len(keys)], deadline, budget)
                               for i in range(level.clients)))  # fmt: skip
        level.seconds = time.perf_counter() - started
        t0 = time.perf_counter()
        try:
            health = await http.get("/healthz", timeout=30)
            state = (
                health.json().get("status", "?")
                if health.status_code == 200
                else f"HTTP {health.status_code}"
            )
        except (httpx.HTTPError, ValueError) as exc:
            state = f"DOWN ({type(exc).__name__})"
        level.health = f"{state} ({(time.perf_counter() - t0) * 1000:.0f} ms)"


def prepare(url: str, admin: str, docs: int, clients: int) -> tuple[list[str], list[str]]:
    """The collection (``docs`` SciFact abstracts), test queries, and one read key per client."""
    data = default_scifact()
    queries = list(data.split_queries("test").values())
    corpus = list(data.corpus.items())[:docs]
    with httpx.Client(base_url=url, timeout=600, headers={"Authorization": f"Bearer {admin}"}) as http:
        http.delete(f"/v1/collections/{COLLECTION}")
        http.post("/v1/collections", json={"name": COLLECTION}).raise_for_status()
        items = [{"id": i, "text": passage_text(d["title"], d["text"])} for i, d in corpus]
        for start in range(0, len(items), 64):
            reply = http.post(
                f"/v1/collections/{COLLECTION}/documents", json={"documents": items[start : start + 64]}
            )
            reply.raise_for_status()
        keys = []
        for i in range(clients):
            reply = http.post("/v1/keys", json={"name": f"load-bench-{i}", "scopes": ["read"]})
            reply.raise_for_status()
            keys.append(reply.json()["key"])
    return queries, keys


def revoke(url: str, admin: str, keys: list[str]) -> None:
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {admin}"}) as http:
        for record in http.get("/v1/keys").json()["keys"]:
            if record["name"].startswith("load-bench-"):
                http.delete(f"/v1/keys/{record['id']}")
        http.delete(f"/v1/collections/{COLLECTION}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running gateway on this machine (default: start a private stack)")
    parser.add_argument("--levels", default="1,4,16,64", help="concurrent clients per level")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each level")
    parser.add_argument("--max-requests", type=int, default=3000, help="cap on requests per level")
    parser.add_argument("--docs", type=int, default=300, help="SciFact abstracts in the searched collection")
    parser.add_argument("--key-modes", default="shared,per-client", help="shared and/or per-client")
    args = parser.parse_args()
    levels = [int(c) for c in args.levels.split(",")]
    modes = [m.strip() for m in args.key_modes.split(",") if m.strip()]
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load tests target this machine only (loopback)")

    with gateway(args.url) as url:
        admin = api_key(url)
        if not admin:
            raise SystemExit("no admin key: set COUNTERPOINT_API_KEY (or run without --url)")
        queries, keys = prepare(url, admin, args.docs, max(levels))
        with httpx.Client(base_url=url, timeout=60) as http:
            limit = "see the gateway's settings" if args.url else "50/second per key (the default)"
            health = http.get("/healthz").json()["status"]
        print(f"gateway {url}: auth on, rate limit {limit}; {args.docs} documents; /healthz before: {health}")
        print(f"{os.cpu_count()} CPU cores shared by the stack and this client; load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start")  # fmt: skip
        print(
            f"each level: {args.seconds:.0f} s or {args.max_requests} requests; 429/503 answers wait Retry-After"
        )
        routes: dict[str, Request] = {
            "embed": ("/v1/embeddings", lambda n: {"input": [queries[n % len(queries)]]}),
            "search": (f"/v1/collections/{COLLECTION}/search",
                       lambda n: {"query": queries[n % len(queries)], "top_k": 10}),
        }  # fmt: skip
        with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {admin}"}) as http:
            for n in range(WARM_UP):  # model and caches warm before the first level; the read keys stay cold
                for path, body in routes.values():
                    http.post(path, json=body(n)).raise_for_status()
        print(HEADER)
        try:
            for mode in modes:
                for route, request in routes.items():
                    for clients in levels:
                        level = Level(route, mode, clients)
                        use = [admin] if mode == "shared" else keys[:clients]
                        asyncio.run(run_level(url, level, request, use, args.seconds, args.max_requests))
                        print(level.row(), flush=True)
                        if level.health.startswith("DOWN"):
                            raise SystemExit("the gateway stopped answering /healthz")
        finally:
            with contextlib.suppress(httpx.HTTPError):
                revoke(url, admin, keys)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
