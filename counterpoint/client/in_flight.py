"""Batches sent in order, a few at a time, so the gateway can have the next while it finishes the last.

`upload_vectors` and `ingest` both cut their input into all-or-nothing requests. Sent one after
another, the gateway's vector store idles while a reply travels back and the next request is read
from the file; with two in flight one batch is stored while the next is read (`ingest` sends one at
a time: there the embedder is the wait). Replies are settled in order, the first error stops the
sending and is raised, and batches not yet sent are never sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from counterpoint.client.transport import Progress
from counterpoint.schemas import IngestResponse

IN_FLIGHT = 2
"""Requests sent at once: one is written by the gateway while the next is prepared or embedded."""

Body = TypeVar("Body")


def send_in_flight(
    collection: str,
    bodies: Iterable[Body],
    send: Callable[[Body], IngestResponse],
    *,
    in_flight: int = IN_FLIGHT,
    on_progress: Progress | None = None,
) -> IngestResponse:
    """Send each body with ``send``, ``in_flight`` at once; the replies summed (``count``: the largest)."""
    totals = IngestResponse(collection=collection, received=0, indexed=0, skipped=0, count=0)
    pending: deque[Future[IngestResponse]] = deque()

    def settle(future: Future[IngestResponse]) -> None:
        reply = future.result()
        totals.received += reply.received
        totals.indexed += reply.indexed
        totals.skipped += reply.skipped
        totals.count = max(totals.count, reply.count)
        if on_progress is not None:
            on_progress(reply.received)

    with ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="cp-send") as pool:
        try:
            for body in bodies:
                pending.append(pool.submit(send, body))
                while len(pending) >= max(1, in_flight):
                    settle(pending.popleft())
            while pending:
                settle(pending.popleft())
        finally:
            for future in pending:
                future.cancel()
    return totals
