"""What a generation hands its caller: a raw token stream run through the stop-string scanner.

:class:`TokenStream` yields token ids, :class:`TextStream` text deltas cut exactly at a stop
string; both record ``finish_reason``, ``generated_tokens`` and ``prompt_tokens``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence
from typing import Any, TypeVar

from counterpoint.decoding.stopping import StopScanner

RawTokens = Generator[int, None, str]
"""A method's raw stream: yields token ids, returns why it ended ("eos" or "length")."""

T = TypeVar("T")


class _Stream(Iterator[T]):
    """Runs a raw token stream through the stop-string scanner; records why it ended."""

    _text_mode = False

    def __init__(self, raw: RawTokens, tokenizer: Any, stops: Sequence[str], prompt_tokens: int) -> None:
        self._raw = raw
        self.prompt_tokens = prompt_tokens
        self.generated_tokens = 0
        self.finish_reason: str | None = None
        needs_scanner = bool(stops) or self._text_mode
        self._scanner = (
            StopScanner(tokenizer, stops, track_tokens=not self._text_mode) if needs_scanner else None
        )
        self._items = self._run()

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        """Stop generating (e.g. the client went away)."""
        self._items.close()
        self._raw.close()

    def _pick(self, tokens: list[int], text: str) -> list[T]:
        raise NotImplementedError

    def _pass_through(self, token: int) -> list[T]:
        raise NotImplementedError

    def _run(self) -> Iterator[T]:
        scanner = self._scanner
        while True:
            try:
                token = next(self._raw)
            except StopIteration as done:
                self.finish_reason = done.value or "length"
                break
            self.generated_tokens += 1
            if scanner is None:
                yield from self._pass_through(token)
                continue
            yield from self._pick(*scanner.push(token))
            if scanner.stopped:
                self.finish_reason = "stop"
                self._raw.close()
                return
        if scanner is not None:
            yield from self._pick(*scanner.flush())


class TokenStream(_Stream[int]):
    """The generated token ids, stop strings applied; ``finish_reason`` once exhausted.

    ``finish_reason``: ``"eos"`` (end-of-sequence token, not yielded), ``"stop"`` (a stop
    string; tokens from the one it starts in on are not yielded), ``"length"``
    (``max_new_tokens`` reached). ``generated_tokens`` counts what the model produced,
    including tokens trimmed by a stop string; ``prompt_tokens`` the prompt's length.
    """

    def _pick(self, tokens: list[int], text: str) -> list[int]:
        return tokens

    def _pass_through(self, token: int) -> list[int]:
        return [token]


class TextStream(_Stream[str]):
    """The generated text as deltas, cut exactly at a stop string; same attributes as TokenStream."""

    _text_mode = True

    def _pick(self, tokens: list[int], text: str) -> list[str]:
        return [text] if text else []

    @property
    def text(self) -> str:
        """The text released so far."""
        return self._scanner.text if self._scanner is not None else ""
