"""Copy files while keeping their holes: the embedded engine's files are mostly preallocated zeros.

A fresh qdrant-edge shard of a few hundred points takes ~0.4 MB on disk but ~150 MB of apparent
size (32 MB WAL and storage chunks, sparse). A plain copy (``shutil.copytree``, ``tarfile``
extraction) writes every zero; these helpers seek over all-zero blocks instead, so copies stay as
small as the original, and hash what they copy on the way (backups verify archives with it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

BLOCK = 1 << 20  # 1 MiB: holes are found per block


def copy_sparse(source: BinaryIO, dest: Path) -> tuple[int, str]:
    """Write ``source`` (read to its end) to a new file ``dest``, skipping all-zero blocks.

    Returns the number of bytes and their SHA-256 (hex), as if every byte had been written.
    """
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        while block := source.read(BLOCK):
            digest.update(block)
            size += len(block)
            if block.count(0) == len(block):
                out.seek(len(block), os.SEEK_CUR)
            else:
                out.write(block)
        out.truncate(size)  # a trailing hole needs the length set explicitly
    return size, digest.hexdigest()


def copy_tree_sparse(source: Path, dest: Path) -> None:
    """Copy the directory ``source`` to ``dest`` (which must not exist): files sparse, no links."""
    dest.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        target = dest / entry.name
        if entry.is_symlink():
            raise ValueError(f"unexpected symbolic link {entry} in {source}")
        if entry.is_dir():
            copy_tree_sparse(entry, target)
        else:
            with open(entry, "rb") as handle:
                copy_sparse(handle, target)
            os.utime(target, ns=(entry.stat().st_atime_ns, entry.stat().st_mtime_ns))


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()
