"""SDK methods for backups (admin scope): download and upload collection archives, dump the registry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx

from counterpoint.client.transport import BACKUP_TIMEOUT, Progress, Transport, raise_for_error, unreachable
from counterpoint.errors import InvalidInput
from counterpoint.schemas import CollectionRestored, RegistryDump


def _attachment_name(headers: httpx.Headers, default: str) -> str:
    """The file name of a ``Content-Disposition: attachment; filename="..."`` header (its last part only)."""
    found = re.search(r'filename="?([^";]+)"?', headers.get("content-disposition", ""))
    return Path(found.group(1)).name if found else default


class BackupsAPI(Transport):
    """``/v1/backups/...``."""

    def backup_collection(
        self, name: str, path: str | Path | None = None, *, on_progress: Progress | None = None
    ) -> Path:
        """Download a backup archive of collection ``name``; returns the file written.

        ``path``: the file, or a directory to put it in under the gateway's name
        (``NAME-YYYYMMDDTHHMMSSZ.cpbackup.tar.gz``); default the current directory. The file appears
        only once complete. ``on_progress`` gets the bytes of each chunk received.
        """
        target = Path(path) if path is not None else Path.cwd()
        try:
            with self._http.stream("GET", f"/v1/backups/collections/{name}", timeout=BACKUP_TIMEOUT) as reply:
                if reply.status_code >= 400:
                    reply.read()
                    raise_for_error(reply)
                if target.is_dir():
                    target = target / _attachment_name(reply.headers, f"{name}.cpbackup.tar.gz")
                partial = target.with_name(target.name + ".part")
                partial.parent.mkdir(parents=True, exist_ok=True)
                with open(partial, "wb") as out:
                    for chunk in reply.iter_bytes(1 << 20):
                        out.write(chunk)
                        if on_progress is not None:
                            on_progress(len(chunk))
                partial.replace(target)
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from None
        return target

    def restore_collection(
        self,
        path: str | Path,
        *,
        name: str | None = None,
        replace: bool = False,
        on_progress: Progress | None = None,
    ) -> CollectionRestored:
        """Upload the backup archive at ``path`` and restore it as ``name`` (default: its name in the backup).

        An existing collection is refused (``Conflict``) unless ``replace``; a bad archive is an
        ``InvalidInput`` and changes nothing. ``on_progress`` gets the bytes of each chunk sent.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInput(f"no such backup file: {path}")

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while block := handle.read(1 << 20):
                    yield block
                    if on_progress is not None:
                        on_progress(len(block))

        params: dict[str, str] = {"replace": str(replace).lower()}
        if name is not None:
            params["name"] = name
        headers = {"Content-Type": "application/gzip", "Content-Length": str(path.stat().st_size)}
        data = self._request(
            "POST", "/v1/backups/collections", params=params, content=chunks(), headers=headers,
            timeout=BACKUP_TIMEOUT,
        )  # fmt: skip
        return CollectionRestored.model_validate(data)

    def backup_registry(self) -> RegistryDump:
        """Every row of the registry database (collections, jobs, models, API key hashes) as a dump."""
        return RegistryDump.model_validate(
            self._request("GET", "/v1/backups/registry", timeout=BACKUP_TIMEOUT)
        )
