"""The one JSON Lines reader: files, uploads and strings, each bad line named by its number.

The gateway, SDK, CLI, data sets, training workers, generation eval and dashboard all read
JSONL through :func:`iter_jsonl`, so every caller reports a broken line the same way
(``InvalidInput``: ``"<name>: line 7 is not valid JSON (...)"``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from counterpoint.errors import InvalidInput
from counterpoint.textfiles import PathLike, open_text

JsonlSource = PathLike | bytes | Iterable[str]
"""A path (plain or ``.gz``), the raw bytes of an upload, or lines of text already in memory."""


def _lines(source: JsonlSource) -> Iterator[str]:
    if isinstance(source, bytes):
        try:
            yield from source.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise InvalidInput("the upload is not UTF-8 text") from None
    elif isinstance(source, str | Path):
        with open_text(source) as handle:
            yield from handle
    else:
        yield from source


def iter_jsonl(source: JsonlSource, name: str | None = None, *, objects: bool = True) -> Iterator[Any]:
    """Yield each non-blank line of ``source`` parsed as JSON.

    ``name`` prefixes error messages (default: the path, or nothing for bytes and lines).
    With ``objects`` (the default) a line that is not a JSON object is an error too.
    """
    if name is None and isinstance(source, str | Path):
        name = str(source)
    where = f"{name}: " if name else ""
    for number, line in enumerate(_lines(source), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}line {number} is not valid JSON ({exc.msg})") from None
        if objects and not isinstance(item, dict):
            raise InvalidInput(f"{where}line {number} must be a JSON object, got {type(item).__name__}")
        yield item
