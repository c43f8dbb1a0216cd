"""Plain or gzip'ed UTF-8 text files, opened the same way everywhere.

A name such as ``corpus.jsonl`` resolves to ``corpus.jsonl.gz`` when only the compressed copy
exists, so shipped data and users' files read alike. Imports nothing from Counterpoint.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path
from typing import TextIO

PathLike = str | os.PathLike[str]


def resolve(path: PathLike) -> Path:
    """Return ``path`` if it exists, else its ``.gz`` sibling; raise FileNotFoundError if neither does."""
    plain = Path(path)
    if plain.exists():
        return plain
    zipped = plain.with_name(plain.name + ".gz")
    if zipped.exists():
        return zipped
    raise FileNotFoundError(f"neither {plain} nor {zipped} exists")


def open_text(path: PathLike) -> TextIO:
    """Open a UTF-8 text file for reading, decompressing when the resolved name ends in ``.gz``.

    ``newline=""`` keeps line endings as written, which the csv module needs; JSON lines are unaffected.
    """
    real = resolve(path)
    if real.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(real, "rb"), encoding="utf-8", newline="")
    return real.open(encoding="utf-8", newline="")
