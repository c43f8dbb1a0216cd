"""Stop strings for streamed generation: hold back what might start one, trim at the first.

A stop string can span several tokens and start in the middle of one, so nothing that
could still turn into a stop string is released: after each token the continuation is
decoded, and the longest tail of it that is a prefix of some stop string (plus a trailing
U+FFFD, an incomplete UTF-8 character) is held back. When a stop string appears, the text
is cut where it starts. At the token level a token is released only once all of its text
is safe, so the token in which a stop string starts is dropped; at the text level the cut
is exact (the text before the stop string inside that token is kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_REPLACEMENT = "\ufffd"


def normalize_stops(stop: str | Sequence[str] | None) -> list[str]:
    """``None`` / one string / several strings → a list of non-empty stop strings."""
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else list(stop)
    for item in stops:
        if not isinstance(item, str) or not item:
            raise ValueError(f"stop strings must be non-empty strings, got {item!r}")
    return stops


def held_back_chars(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of a stop string."""
    hold = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), hold, -1):
            if text.endswith(stop[:length]):
                hold = length
                break
    return hold


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index where the earliest stop string starts in ``text``, or None."""
    found = [i for i in (text.find(stop) for stop in stops) if i >= 0]
    return min(found) if found else None


class StopScanner:
    """Feeds generated tokens in; hands back the tokens and text that are safe to emit."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], *, track_tokens: bool = True) -> None:
        self.tokenizer = tokenizer
        self.stops = list(stops)
        self.track_tokens = track_tokens
        self.ids: list[int] = []
        self.sent_tokens = 0
        self.sent_chars = 0
        self.stopped = False

    def _decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def _release(self, text: str, safe: int) -> tuple[list[int], str]:
        delta = text[self.sent_chars : safe] if safe > self.sent_chars else ""
        self.sent_chars = max(self.sent_chars, safe)
        tokens: list[int] = []
        if self.track_tokens:
            last = len(self.ids) - 1
            while self.sent_tokens <= last:
                k = self.sent_tokens
                end = len(text) if k == last else len(self._decode(self.ids[: k + 1]))
                if end > safe:
                    break
                tokens.append(self.ids[k])
                self.sent_tokens += 1
        return tokens, delta

    def push(self, token: int) -> tuple[list[int], str]:
        """Add one generated token; return what can be emitted now. Sets ``stopped``."""
        self.ids.append(token)
        text = self._decode(self.ids)
        cut = find_stop(text, self.stops)
        if cut is not None:
            self.stopped = True
            return self._release(text, cut)
        safe = len(text) - held_back_chars(text, self.stops)
        while safe > self.sent_chars and text[safe - 1] == _REPLACEMENT:
            safe -= 1
        return self._release(text, safe)

    def flush(self) -> tuple[list[int], str]:
        """Generation ended without a stop string: release everything held back."""
        if self.stopped:
            return [], ""
        text = self._decode(self.ids)
        return self._release(text, len(text))

    @property
    def text(self) -> str:
        """The continuation released so far."""
        return self._decode(self.ids)[: self.sent_chars]
