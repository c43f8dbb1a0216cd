"""The collection backup archive: one gzip'ed tar holding a manifest and the collection's vector snapshot.

    counterpoint-backup.json   the manifest, first member: what this is, when and by which release it
                               was made, the collection's registry entry (name, model, dimensions,
                               distance, payload indexes), the snapshot's format and point count, and
                               the size and SHA-256 of every file below vectors/
    vectors/...                the snapshot as the vector store wrote it (``edge-shard``: the embedded
                               engine's shard/ directory; ``qdrant-snapshot``: collection.snapshot)

Reading trusts nothing: members must be plain files or directories below ``vectors/`` (no links, no
``..``), each file must match its size and checksum, and every listed file must be there. Files are
extracted into a staging directory the caller owns, keeping the engine's sparse files sparse.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zlib
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from counterpoint.errors import InvalidInput
from counterpoint.infra.sparse import copy_sparse, sha256_file
from counterpoint.schemas import Bm25Config, Distance, FieldType, IndexConfig

MANIFEST = "counterpoint-backup.json"
KIND = "counterpoint-collection-backup"
FORMAT_VERSION = 1
VECTORS = "vectors"
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


class BackedUpCollection(BaseModel):
    """The collection's registry entry, as it was when backed up."""

    name: str
    model: str
    dimensions: int = Field(ge=1)
    distance: Distance
    payload_indexes: dict[str, FieldType] = Field(default_factory=dict)
    physical_name: str
    created_at: datetime | None = None
    index: IndexConfig = Field(default_factory=IndexConfig)  # absent from older backups: the defaults
    lexical: Bm25Config | None = None  # its BM25 settings; absent from older backups: dense only


class BackedUpVectors(BaseModel):
    """What the vector store wrote: its format, the backend that wrote it and how many points it holds."""

    format: str
    backend: str
    points: int = Field(ge=0)


class FileEntry(BaseModel):
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    kind: Literal["counterpoint-collection-backup"]
    format_version: int
    created_at: datetime
    counterpoint_version: str
    collection: BackedUpCollection
    vectors: BackedUpVectors
    files: dict[str, FileEntry]

    @field_validator("format_version")
    @classmethod
    def _version(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"backup format version {value}; this release reads version {FORMAT_VERSION}")
        return value


def write_archive(out: Path, manifest: dict[str, Any], vectors_dir: Path) -> Manifest:
    """Write ``manifest`` (plus the file list it computes) and ``vectors_dir`` as the archive ``out``."""
    files: dict[str, dict[str, Any]] = {}
    entries: list[tuple[Path, str]] = []
    for path in sorted(vectors_dir.rglob("*")):
        if path.is_symlink():
            raise ValueError(f"unexpected symbolic link in the snapshot: {path}")
        arcname = f"{VECTORS}/{path.relative_to(vectors_dir).as_posix()}"
        entries.append((path, arcname))
        if path.is_file():
            files[arcname] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
    full = Manifest.model_validate(
        {**manifest, "kind": KIND, "format_version": FORMAT_VERSION, "files": files}
    )
    data = full.model_dump_json(indent=2).encode()
    # Level 1: the engine's files are mostly zeros (which any level squeezes) and floats (which none does).
    with tarfile.open(out, "w:gz", compresslevel=1, format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
        for path, arcname in entries:
            tar.add(path, arcname=arcname, recursive=False)
    return full


def _read_manifest(tar: tarfile.TarFile) -> Manifest:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile() or first.size > _MAX_MANIFEST_BYTES:
        raise InvalidInput(
            f"not a Counterpoint collection backup: the archive does not start with {MANIFEST}"
        )
    handle = tar.extractfile(first)
    assert handle is not None
    try:
        raw = json.loads(handle.read())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"not a Counterpoint collection backup: {MANIFEST} is not JSON") from None
    if isinstance(raw, dict) and raw.get("kind") != KIND:
        raise InvalidInput(
            f"not a Counterpoint collection backup: its manifest says kind {raw.get('kind')!r}, not {KIND!r}"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first_error = exc.errors()[0]
        where = ".".join(str(p) for p in first_error["loc"])
        raise InvalidInput(f"backup manifest: {where}: {first_error['msg']}") from None


def archive_manifest(archive: Path) -> Manifest:
    """The manifest of a backup archive, read without unpacking its vectors."""
    with tarfile.open(archive) as tar:
        return _read_manifest(tar)


def _member_path(staging: Path, member: tarfile.TarInfo) -> Path:
    parts = PurePosixPath(member.name).parts
    if not parts or parts[0] != VECTORS or len(parts) < 2 or ".." in parts or member.name.startswith("/"):
        raise InvalidInput(f"backup archive: unexpected member {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise InvalidInput(f"backup archive: {member.name!r} is a link or a device, not a file")
    return staging.joinpath(*parts)


def read_archive(archive: Path, staging: Path) -> Manifest:
    """Check ``archive`` and extract its snapshot to ``staging/vectors``; its manifest.

    Any problem (not a tar, not ours, a foreign member, a truncated or altered file) is an
    ``InvalidInput`` that says which; what was extracted so far stays in ``staging`` for the caller
    to delete.
    """
    try:
        tar = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below; opened apart to name its error
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InvalidInput(
            "not a Counterpoint collection backup: the file is not a (gzip'ed) tar archive"
        ) from None
    try:
        with tar:
            manifest = _read_manifest(tar)
            seen: set[str] = set()
            (staging / VECTORS).mkdir(parents=True, exist_ok=True)
            while (member := tar.next()) is not None:
                dest = _member_path(staging, member)
                if member.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                expected = manifest.files.get(member.name)
                if expected is None or member.name in seen:
                    raise InvalidInput(f"backup archive: {member.name!r} is not listed in its manifest")
                dest.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None
                size, digest = copy_sparse(source, dest)
                if (size, digest) != (expected.size, expected.sha256):
                    raise InvalidInput(
                        f"the backup is corrupt: {member.name} does not match its checksum (altered or damaged)"
                    )
                seen.add(member.name)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:  # e.g. "CRC check failed"
        raise InvalidInput(f"the backup is corrupt or truncated ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        if "gzip" in str(exc).lower() or "compressed" in str(exc).lower():
            raise InvalidInput(f"the backup is corrupt or truncated ({exc})") from None
        raise
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise InvalidInput(
            f"the backup is truncated: {len(missing)} file(s) listed in its manifest are missing, e.g. {missing[0]}"
        )
    return manifest
