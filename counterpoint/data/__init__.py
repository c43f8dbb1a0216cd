"""Shipped copies of the public data sets (SciFact in BEIR layout, STS Benchmark), gzip'ed.

They live inside the package so a clone or an installed wheel has them without any shared
folder; see ``README.md`` next to this file for provenance, licenses and checksums, and
``counterpoint.datasets`` for the loaders. ``write_gzip_copies`` rebuilds the copies from the
uncompressed release files byte-for-byte (gzip header mtime 0, no file name, level 9).
"""

from __future__ import annotations

import gzip
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent

#: Uncompressed file names, relative to a data root; the shipped copies add ``.gz``.
FILES: tuple[str, ...] = (
    "scifact/corpus.jsonl",
    "scifact/queries.jsonl",
    "scifact/qrels/train.tsv",
    "scifact/qrels/test.tsv",
    "stsb/train.tsv",
    "stsb/dev.tsv",
    "stsb/test.tsv",
)


def write_gzip_copies(source: Path, target: Path = DATA_DIR) -> list[Path]:
    """Gzip every file of ``FILES`` from ``source`` into ``target`` deterministically; returns the outputs.

    ``gzip.compress(..., mtime=0)`` writes no file name and a zero timestamp, so re-running on the
    same input gives identical bytes (for one zlib version) and the repository diff stays empty.
    """
    written: list[Path] = []
    for rel in FILES:
        out = target / f"{rel}.gz"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(gzip.compress((source / rel).read_bytes(), compresslevel=9, mtime=0))
        written.append(out)
    return written
