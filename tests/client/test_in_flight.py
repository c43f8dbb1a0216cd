"""`send_in_flight`: two batches at once, replies summed in order, the first error stops the rest."""

from __future__ import annotations

import threading

import pytest

from counterpoint.client.in_flight import send_in_flight
from counterpoint.errors import InvalidInput
from counterpoint.schemas import IngestResponse


def reply(n: int, count: int) -> IngestResponse:
    return IngestResponse(collection="c", received=n, indexed=n, skipped=0, count=count)


def test_two_batches_are_in_flight_at_once_and_the_replies_are_summed() -> None:
    both_in = threading.Barrier(2, timeout=5)  # the first send returns only once the second started
    progress: list[int] = []

    def send(batch: list[int]) -> IngestResponse:
        if batch[0] < 2:
            both_in.wait()
        return reply(len(batch), count=batch[-1] + 1)

    batches = [[0], [1], [2, 3], [4, 5, 6]]
    totals = send_in_flight("c", iter(batches), send, on_progress=progress.append)
    assert (totals.received, totals.indexed, totals.count) == (7, 7, 7)
    assert progress == [1, 1, 2, 3]  # in the order the batches were read


def test_the_first_error_is_raised_and_later_batches_are_never_sent() -> None:
    sent: list[int] = []

    def send(batch: int) -> IngestResponse:
        sent.append(batch)
        if batch == 1:
            raise InvalidInput("batch 1 is bad")
        return reply(1, count=batch + 1)

    with pytest.raises(InvalidInput, match="batch 1"):
        send_in_flight("c", iter(range(10)), send)
    assert max(sent) <= 2  # batch 1 failed while batch 2 was at most in flight


def test_one_in_flight_sends_one_after_another() -> None:
    running = [0]
    most = [0]
    lock = threading.Lock()

    def send(batch: int) -> IngestResponse:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        threading.Event().wait(0.02)  # long enough for a second send to overlap, if one were allowed
        with lock:
            running[0] -= 1
        return reply(1, count=batch + 1)

    assert send_in_flight("c", iter(range(5)), send, in_flight=1).received == 5
    assert most[0] == 1
