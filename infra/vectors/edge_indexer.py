"""The index lifecycle of the embedded engine: HNSW graphs built in the background after ingest.

The engine has no optimizer thread of its own; :class:`BackgroundIndexer` is one. Every upsert
notes its collection. Once writes to it have paused for ``idle_s`` (or have gone on for
``max_wait_s``) and at least ``min_points`` of its points are outside the graph, the indexer runs
the store's ``optimize``: a child process on a copy of the shard, so searches and upserts go on
meanwhile. One build at a time (the machine's cores are shared with the embedder); a collection's
build is not retried until its point count changes, so one the engine leaves unindexed (too small
for a graph) is not rebuilt in a loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from counterpoint.errors import NotFound

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexPolicy:
    """When a collection's graph is (re)built: see the module docstring."""

    min_points: int = 10_000
    idle_s: float = 5.0
    max_wait_s: float = 300.0


class BackgroundIndexer:
    """A daemon thread that builds graphs by ``policy``; ``counts(name)`` gives (points, indexed)."""

    def __init__(
        self,
        policy: IndexPolicy,
        counts: Callable[[str], tuple[int, int]],
        build: Callable[[str], bool],
    ) -> None:
        self.policy = policy
        self._counts = counts
        self._build = build
        self._lock = threading.Lock()
        self._dirty: dict[str, tuple[float, float]] = {}  # name -> (first, last) write since a check
        self._built: dict[str, int] = {}  # name -> point count when its last build started
        self._building: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def note(self, name: str) -> None:
        """Collection ``name`` was written: check it once writes pause (starts the thread)."""
        now = time.monotonic()
        with self._lock:
            first = self._dirty.get(name, (now, now))[0]
            self._dirty[name] = (first, now)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="edge-indexer", daemon=True)
                self._thread.start()

    def forget(self, name: str) -> None:
        """Collection ``name`` was deleted."""
        with self._lock:
            self._dirty.pop(name, None)
            self._built.pop(name, None)

    def indexing(self, name: str, points: int, indexed: int) -> bool:
        """Whether a build of ``name`` runs or is due (its state reads ``indexing``).

        A due collection nobody writes to (one left unindexed before a restart) is scheduled here.
        """
        with self._lock:
            if self._building == name:
                return True
            due = self._due(name, points, indexed)
            scheduled = name in self._dirty
        if due and not scheduled:
            self.note(name)
        return due

    def _due(self, name: str, points: int, indexed: int) -> bool:
        return points - indexed >= self.policy.min_points and self._built.get(name) != points

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (a running build is stopped by closing the store's shards)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        tick = max(0.02, min(self.policy.idle_s, 1.0))
        while not self._stop.wait(tick):
            for name in self._take_ready():
                if self._stop.is_set():
                    return
                self._maybe_build(name)

    def _take_ready(self) -> list[str]:
        """The collections whose writes paused for ``idle_s`` or went on for ``max_wait_s``."""
        now = time.monotonic()
        with self._lock:
            ready = [
                name
                for name, (first, last) in self._dirty.items()
                if now - last >= self.policy.idle_s or now - first >= self.policy.max_wait_s
            ]
            for name in ready:
                del self._dirty[name]
            return ready

    def _maybe_build(self, name: str) -> None:
        try:
            points, indexed = self._counts(name)
            with self._lock:
                if self._stop.is_set() or not self._due(name, points, indexed):
                    return
                self._building = name
                self._built[name] = points
            started = time.monotonic()
            try:
                changed = self._build(name)
            finally:
                with self._lock:
                    self._building = None
            log.info(
                "built the graph of '%s' (%d points, changed=%s) in %.1f s",
                name,
                points,
                changed,
                time.monotonic() - started,
            )
        except NotFound:
            self.forget(name)  # deleted meanwhile
        except Exception:  # a failed build leaves the collection serving; the next write retries
            log.exception("building the graph of collection '%s' failed", name)
