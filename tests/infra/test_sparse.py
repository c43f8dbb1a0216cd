"""Sparse copies: same bytes and checksum as the source, holes kept as holes."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from counterpoint.infra.sparse import BLOCK, copy_sparse, copy_tree_sparse, sha256_file


def _allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def test_copy_sparse_keeps_bytes_and_holes(tmp_path: Path) -> None:
    data = b"head" + b"\0" * (8 * BLOCK) + b"middle" + b"\0" * (4 * BLOCK)  # ends in a hole
    dest = tmp_path / "copy.bin"
    size, digest = copy_sparse(io.BytesIO(data), dest)
    assert size == len(data) and digest == hashlib.sha256(data).hexdigest()
    assert dest.read_bytes() == data and sha256_file(dest) == digest
    assert _allocated(dest) < 4 * BLOCK  # the ~12 MiB of zeros were not written


def test_copy_tree_sparse_copies_directories(tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "a" / "b").mkdir(parents=True)
    (source / "empty").mkdir()
    (source / "top.txt").write_text("top")
    (source / "a" / "b" / "deep.bin").write_bytes(b"\0" * BLOCK + b"x")
    copy_tree_sparse(source, tmp_path / "dst")
    got = sorted(p.relative_to(tmp_path / "dst").as_posix() for p in (tmp_path / "dst").rglob("*"))
    assert got == ["a", "a/b", "a/b/deep.bin", "empty", "top.txt"]
    assert (tmp_path / "dst" / "a" / "b" / "deep.bin").read_bytes() == b"\0" * BLOCK + b"x"
