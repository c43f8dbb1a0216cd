"""The demo collection that `counterpoint up` fills: SciFact abstracts, searchable at once.

Indexing the 5,183 abstracts takes minutes on a laptop CPU, so it runs in a background
thread through the public SDK, one batch at a time: each batch is searchable as soon as it
lands, and a restarted `up` resumes where it stopped (``skip_existing``).
"""

from __future__ import annotations

import threading

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from counterpoint.client import Client
from counterpoint.datasets import default_scifact_dir, iter_corpus, to_ingest_document
from counterpoint.errors import CounterpointError, NotFound
from counterpoint.settings import Settings

DEMO_BATCH = 32


def index_demo(settings: Settings, stop: threading.Event | None = None, *, show_progress: bool = True) -> int:
    """Create the demo collection if needed and ingest what is missing; returns its final count."""
    docs = [to_ingest_document(doc) for doc in iter_corpus(default_scifact_dir())]
    with Client(settings.gateway_url, api_key=settings.client_api_key) as client:
        try:
            info = client.get_collection(settings.demo_collection)
        except NotFound:
            info = client.create_collection(settings.demo_collection)
        if info.count >= len(docs):
            return info.count
        columns = (
            TextColumn(f"indexing demo '{settings.demo_collection}'"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, disable=not show_progress, transient=False) as progress:
            task = progress.add_task("ingest", total=len(docs))
            for start in range(0, len(docs), DEMO_BATCH):
                if stop is not None and stop.is_set():
                    break
                batch = docs[start : start + DEMO_BATCH]
                reply = client.ingest(
                    settings.demo_collection, batch, batch_size=DEMO_BATCH, skip_existing=True
                )
                progress.advance(task, len(batch))
                if not progress.console.is_terminal and (start // DEMO_BATCH) % 20 == 0:
                    print(
                        f"indexing demo '{settings.demo_collection}': {reply.count}/{len(docs)}", flush=True
                    )
        return client.get_collection(settings.demo_collection).count


def start_demo_indexing(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Index the demo in a daemon thread; errors are reported, never fatal to the platform."""

    def run() -> None:
        try:
            count = index_demo(settings, stop)
            if not stop.is_set():
                print(f"demo collection '{settings.demo_collection}' ready: {count} documents", flush=True)
        except CounterpointError as exc:
            if not stop.is_set():
                print(f"demo indexing stopped: {exc}", flush=True)

    thread = threading.Thread(target=run, name="demo-indexing", daemon=True)
    thread.start()
    return thread
