"""Backups: a collection archive restored into a fresh data directory answers searches exactly as the
original did; the registry dump restores a fresh registry; bad archives and taken names change nothing.

Every gateway here is the real app on the tiny in-process model (tests/services/conftest.py) with the
embedded engine in a temporary data directory; the SDK talks to it in-process.
"""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient
from typer.testing import CliRunner

from counterpoint import cli
from counterpoint.client import Client
from counterpoint.errors import Conflict, InvalidInput, NotFound
from counterpoint.infra.db.dump import load_registry
from counterpoint.infra.db.registry import Registry
from counterpoint.infra.vectors.base import VectorStore
from counterpoint.infra.vectors.edge import EdgeVectorStore
from counterpoint.infra.vectors.qdrant import QdrantVectorStore
from counterpoint.models.embedder import TextEmbedder
from counterpoint.services.embed.backends import LocalEmbedder
from counterpoint.services.gateway.app import ADMIN, api_routes, create_app
from counterpoint.services.gateway.archive import MANIFEST
from counterpoint.services.gateway.core import GatewayCore
from counterpoint.settings import Settings
from tests.services.conftest import TINY

QUERIES = ["document about topic 3", "lighthouse keeper", "number 17", "topic 5 in 2005"]
FILTER = {"must": [{"key": "year", "range": {"gte": 2010}}], "must_not": [{"key": "kind", "match": "review"}]}
N_DOCS = 70
# The SDK gives backups no read timeout; the in-process TestClient warns that it ignores timeouts.
pytestmark = pytest.mark.filterwarnings("ignore:You should not use the 'timeout' argument")


class Gateway:
    """One gateway (core + app + SDK) on its own data directory."""

    def __init__(self, data_dir: Path, embedder: TextEmbedder, store: VectorStore | None = None) -> None:
        self.settings = Settings(
            data_dir=data_dir, embed_model=TINY, start_mlflow=False, max_documents_per_ingest=50
        )
        self.registry = Registry.from_url(self.settings.db_url)
        self.store = store or EdgeVectorStore(self.settings.vectors_dir)
        self.core = GatewayCore(self.settings, self.registry, self.store, LocalEmbedder(TINY, embedder))
        self.http = TestClient(create_app(self.core), raise_server_exceptions=False)
        self.http.__enter__()
        self.sdk = Client("http://testserver")
        self.sdk._http = self.http  # the TestClient is an httpx.Client: the SDK talks to the app in-process

    def close(self) -> None:
        self.http.__exit__(None, None, None)
        self.store.close()
        self.registry.close()

    def results(self, name: str) -> list[list[tuple[str, float]]]:
        """Every test query's hits (id, score), plain and filtered, lexical and hybrid (the BM25 vectors
        travel with the backup), and one raw-vector search."""
        found = []
        for query in QUERIES:
            for flt in (None, FILTER):
                hits = self.sdk.search(name, query, top_k=10, filter=flt).hits
                found.append([(h.id, h.score) for h in hits])
            for mode in ("lexical", "hybrid"):
                hits = self.sdk.search(name, query, top_k=10, mode=mode).hits  # type: ignore[arg-type]
                assert hits or query == "lighthouse keeper", f"no {mode} hits for {query!r}"  # no such words
                found.append([(h.id, h.score) for h in hits])
        vector = [math.sin(i + 1.0) for i in range(self.core.registry.get_collection(name).dimensions)]
        found.append([(h.id, h.score) for h in self.sdk.search(name, vector=vector, top_k=5).hits])
        return found

    def physical(self) -> set[str]:
        """The physical collections in the embedded engine's directory (what a failed restore must not leave)."""
        return (
            {p.name for p in self.settings.vectors_dir.iterdir()}
            if self.settings.vectors_dir.exists()
            else set()
        )


def docs(n: int = N_DOCS, prefix: str = "") -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{i}",
            "title": f"title {i}",
            "text": f"{prefix}document number {i} about topic {i % 7}",
            "metadata": {"year": 2000 + i % 20, "kind": "review" if i % 3 == 0 else "article"},
        }
        for i in range(n)
    ]


@pytest.fixture()
def gateways(tmp_path: Path, tiny_embedder: TextEmbedder) -> Iterator[Any]:
    opened: list[Gateway] = []

    def make(name: str, store: VectorStore | None = None) -> Gateway:
        gw = Gateway(tmp_path / name, tiny_embedder, store)
        opened.append(gw)
        return gw

    yield make
    for gw in opened:
        gw.close()


@pytest.fixture()
def source(gateways: Any) -> Gateway:
    """A gateway holding 'papers' (70 documents, two payload indexes)."""
    gw = gateways("source")
    gw.sdk.create_collection("papers", payload_indexes={"year": "integer", "kind": "keyword"})
    gw.sdk.ingest("papers", docs(), batch_size=50)
    return gw


@pytest.fixture()
def archive(source: Gateway, tmp_path: Path) -> Path:
    out = tmp_path / "backups"
    out.mkdir()
    return source.sdk.backup_collection("papers", out)


def test_restore_into_a_fresh_data_dir_answers_like_the_original(
    source: Gateway, archive: Path, gateways: Any
) -> None:
    assert archive.name.startswith("papers-") and archive.name.endswith(".cpbackup.tar.gz")
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile(MANIFEST))  # type: ignore[arg-type]
    assert manifest["collection"]["payload_indexes"] == {"year": "integer", "kind": "keyword"}
    assert manifest["vectors"] == {"format": "edge-shard", "backend": "edge", "points": N_DOCS}
    assert manifest["collection"]["physical_name"] == source.registry.get_collection("papers").physical_name

    fresh = gateways("fresh")
    restored = fresh.sdk.restore_collection(archive)
    assert restored.source == "papers" and restored.points == N_DOCS and not restored.replaced
    before, after = source.sdk.get_collection("papers"), fresh.sdk.get_collection("papers")
    for field in ("model", "dimensions", "distance", "payload_indexes", "count", "status"):
        assert getattr(after, field) == getattr(before, field), field
    assert fresh.results("papers") == source.results("papers")
    hit = fresh.sdk.search("papers", "topic 3", top_k=1).hits[0]
    assert hit.title and hit.text and set(hit.metadata) == {"year", "kind"}
    # The restored collection is a normal one: it takes writes and survives a restart of its store.
    fresh.sdk.ingest("papers", docs(75)[70:])
    assert fresh.sdk.get_collection("papers").count == 75


def test_restore_under_another_name_keeps_the_original(source: Gateway, archive: Path) -> None:
    restored = source.sdk.restore_collection(archive, name="papers-copy")
    assert restored.collection.name == "papers-copy" and restored.collection.count == N_DOCS
    assert source.results("papers-copy") == source.results("papers")
    assert {c.name for c in source.sdk.list_collections()} == {"papers", "papers-copy"}
    rows = {r.name: r.physical_name for r in source.registry.list_collections()}
    assert rows["papers"] != rows["papers-copy"]


def test_a_restore_keeps_the_index_settings(source: Gateway, tmp_path: Path) -> None:
    index = {
        "m": 8,
        "ef_construct": 40,
        "hnsw_ef": 30,
        "quantization": True,
        "oversampling": 2.5,
        "on_disk": True,
        "datatype": "float16",
    }
    source.sdk.create_collection("tuned", index=index)
    source.sdk.ingest("tuned", docs()[:5])
    saved = source.sdk.backup_collection("tuned", tmp_path)
    restored = source.sdk.restore_collection(saved, name="tuned-copy")
    assert restored.collection.index.model_dump() == index
    assert source.sdk.get_collection("tuned-copy").index.model_dump() == index


def test_restore_onto_an_existing_name_is_refused_and_changes_nothing(source: Gateway, archive: Path) -> None:
    expected, dirs = source.results("papers"), source.physical()
    row = source.registry.get_collection("papers")
    with pytest.raises(Conflict, match="already exists.*--replace"):
        source.sdk.restore_collection(archive)
    reply = source.http.post("/v1/backups/collections", content=archive.read_bytes())
    assert reply.status_code == 409 and reply.json()["error"]["type"] == "conflict"
    assert source.registry.get_collection("papers") == row
    assert source.physical() == dirs and source.results("papers") == expected


def test_replace_brings_the_backup_back(source: Gateway, archive: Path) -> None:
    expected = source.results("papers")
    old = source.registry.get_collection("papers").physical_name
    source.sdk.ingest("papers", docs(N_DOCS + 20, prefix="changed "), batch_size=50)  # overwrite 70, add 20
    assert source.results("papers") != expected
    restored = source.sdk.restore_collection(archive, replace=True)
    assert restored.replaced and restored.collection.count == N_DOCS
    assert source.results("papers") == expected
    new = source.registry.get_collection("papers").physical_name
    assert new != old and old not in source.physical() and new in source.physical()


def test_registry_then_collection_restore_rebuilds_a_fresh_data_dir(
    source: Gateway, archive: Path, gateways: Any, tmp_path: Path
) -> None:
    """Disaster recovery: the registry dump first (collections registered, no vectors), then the archive
    fills the registered collection in without --replace."""
    source.registry.register_model("tiny-local", "/models/tiny", dimensions=32)
    dump = source.sdk.backup_registry()
    assert [c["name"] for c in dump.tables["collections"]] == ["papers"]
    fresh_db = Settings(data_dir=tmp_path / "fresh").db_url
    assert load_registry(fresh_db, dump.model_dump(mode="json"))["collections"] == 1
    fresh = gateways("fresh")  # the platform starts on the restored registry
    assert fresh.registry.get_model("tiny-local").dimensions == 32
    with pytest.raises(NotFound):  # registered, but no vectors yet
        fresh.sdk.get_collection("papers")
    restored = fresh.sdk.restore_collection(archive)
    assert not restored.replaced
    assert fresh.results("papers") == source.results("papers")


def test_a_backup_of_the_embedded_engine_restores_on_a_qdrant_server(
    source: Gateway, archive: Path, gateways: Any
) -> None:
    """The other backend replays the archive's points (qdrant-client's local mode stands in for a server)."""
    other = gateways("qdrant", store=QdrantVectorStore(QdrantClient(":memory:")))
    restored = other.sdk.restore_collection(archive)
    assert restored.collection.count == N_DOCS and restored.snapshot_format == "edge-shard"
    for got, want in zip(other.results("papers"), source.results("papers"), strict=True):
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
        scores = [round(s, 4) for _, s in want]
        if len(set(scores)) == len(scores):  # documents that tie (BM25 often) may come in either order
            assert [i for i, _ in got] == [i for i, _ in want]


# --- bad input -----------------------------------------------------------------------------------


def _rewrite(archive: Path, out: Path, change: Any) -> Path:
    """A copy of ``archive`` whose members pass through ``change(info, data) -> (info, data) | None``."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for info in src.getmembers():
            data = src.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            changed = change(info, data)
            if changed is None:
                continue
            info, data = changed
            if data is not None:
                info.size = len(data)
            dst.addfile(info, io.BytesIO(data) if data is not None else None)
    return out


def _tampered(info: tarfile.TarInfo, data: bytes | None) -> tuple[tarfile.TarInfo, bytes | None]:
    if data and info.name.endswith("chunk_0.mmap"):
        data = b"\x7f" * 64 + data[64:]
    return info, data


def _foreign_member(info: tarfile.TarInfo, data: bytes | None) -> tuple[tarfile.TarInfo, bytes | None]:
    if info.name.endswith("edge_config.json"):
        info.name = "vectors/../../evil.json"
    return info, data


def _dropped(info: tarfile.TarInfo, data: bytes | None) -> tuple[tarfile.TarInfo, bytes | None] | None:
    return None if info.name.endswith("segment.json") else (info, data)


def test_bad_archives_are_422s_that_change_nothing(source: Gateway, archive: Path, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as tar:
        tar.add(Path(__file__), arcname="notes.py")
    not_ours_json = tmp_path / "dump.tar.gz"
    with tarfile.open(not_ours_json, "w:gz") as tar:
        data = json.dumps({"kind": "something-else"}).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    flips = []  # a damaged byte anywhere in the compressed stream
    size = archive.stat().st_size
    for at in (size // 4, size // 2, 3 * size // 4):
        raw = bytearray(archive.read_bytes())
        raw[at] ^= 0xFF
        flips.append(tmp_path / f"flipped-{at}.tar.gz")
        flips[-1].write_bytes(bytes(raw))
    text = tmp_path / "registry.json"
    text.write_text(json.dumps(source.sdk.backup_registry().model_dump(mode="json")))
    cases = {
        text: "not a \\(gzip'ed\\) tar archive",
        foreign: "does not start with counterpoint-backup.json",
        not_ours_json: "kind 'something-else'",
        truncated: "corrupt or truncated",
        **{flipped: "corrupt" for flipped in flips},
        _rewrite(archive, tmp_path / "tampered.tar.gz", _tampered): "does not match its checksum",
        _rewrite(archive, tmp_path / "escape.tar.gz", _foreign_member): "unexpected member",
        _rewrite(archive, tmp_path / "dropped.tar.gz", _dropped): "truncated: 1 file",
    }
    dirs, expected = source.physical(), source.results("papers")
    for bad, message in cases.items():
        with pytest.raises(InvalidInput, match=message):
            source.sdk.restore_collection(bad, name="restored")
        reply = source.http.post("/v1/backups/collections?name=restored", content=bad.read_bytes())
        assert reply.status_code == 422, (bad.name, reply.text)
        assert reply.json()["error"]["type"] == "invalid_request"
    assert [c.name for c in source.sdk.list_collections()] == ["papers"]
    assert source.physical() == dirs and source.results("papers") == expected
    assert not list(source.settings.tmp_dir.iterdir())  # scratch space cleaned up
    assert not (tmp_path / "evil.json").exists()


def test_other_bad_requests(source: Gateway, archive: Path) -> None:
    with pytest.raises(NotFound, match="ghost"):
        source.sdk.backup_collection("ghost", archive.parent)
    assert source.http.get("/v1/backups/collections/ghost").status_code == 404
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]  # no partial file left
    empty = source.http.post("/v1/backups/collections", content=b"")
    assert empty.status_code == 422 and "request body" in empty.json()["error"]["message"]
    with pytest.raises(InvalidInput, match="collection name"):
        source.sdk.restore_collection(archive, name="bad name!")
    with pytest.raises(InvalidInput, match="no such backup file"):
        source.sdk.restore_collection(archive.parent / "missing.tar.gz")


def test_a_restore_over_a_collection_being_reindexed_waits(source: Gateway, archive: Path) -> None:
    source.registry.set_collection_status("papers", "reindexing")
    with pytest.raises(Conflict, match="re-indexed"):
        source.sdk.restore_collection(archive, replace=True)


def test_a_model_this_platform_cannot_serve_is_refused(
    source: Gateway, archive: Path, tmp_path: Path
) -> None:
    def other_model(info: tarfile.TarInfo, data: bytes | None) -> tuple[tarfile.TarInfo, bytes | None]:
        if info.name == MANIFEST and data is not None:
            manifest = json.loads(data)
            manifest["collection"]["model"] = "no-such-model"
            data = json.dumps(manifest).encode()
        return info, data

    dirs = source.physical()
    with pytest.raises(InvalidInput, match="no-such-model.*cannot serve"):
        source.sdk.restore_collection(_rewrite(archive, tmp_path / "m.tar.gz", other_model), name="x")
    assert source.physical() == dirs and source.registry.list_collections()[0].name == "papers"


def test_backup_routes_need_the_admin_scope(source: Gateway) -> None:
    backup_routes = [r for r in api_routes(source.http.app) if "backups" in r.path]  # type: ignore[arg-type]
    assert {(r.path, *r.methods) for r in backup_routes} == {
        ("/v1/backups/collections/{name}", "GET"),
        ("/v1/backups/collections", "POST"),
        ("/v1/backups/registry", "GET"),
    }
    assert all(ADMIN in r.dependencies for r in backup_routes)


def test_restore_bodies_have_their_own_size_limit(tmp_path: Path, tiny_embedder: TextEmbedder) -> None:
    gw = Gateway(tmp_path / "small", tiny_embedder)
    gw.settings.limits.max_body_bytes, gw.settings.limits.max_restore_bytes = 2048, 4096
    try:
        app = create_app(gw.core)
        with TestClient(app, raise_server_exceptions=False) as http:
            big = http.post("/v1/backups/collections", content=b"x" * 5000)
            assert big.status_code == 413 and "max_restore_bytes" in big.json()["error"]["message"]
            fits = http.post(
                "/v1/backups/collections", content=b"x" * 3000
            )  # over max_body_bytes, under the other
            assert fits.status_code == 422 and "not a (gzip'ed) tar" in fits.json()["error"]["message"]
    finally:
        gw.close()


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_backup_and_restore(
    source: Gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gateways: Any
) -> None:
    monkeypatch.setattr(cli, "client", lambda: source.sdk)
    runner = CliRunner()
    out = tmp_path / "papers.cpbackup.tar.gz"
    made = runner.invoke(cli.app, ["backup", "collection", "papers", "-o", str(out)])
    assert made.exit_code == 0, made.output
    assert out.is_file() and f"wrote {out}" in made.stdout and "70 documents" in made.stdout
    into = runner.invoke(cli.app, ["backup", "collection", "papers", "-o", str(tmp_path / "made")])
    assert into.exit_code == 0, into.output
    assert [p.name.startswith("papers-") for p in (tmp_path / "made").iterdir()] == [True]

    copy = runner.invoke(cli.app, ["restore", "collection", str(out), "--name", "copy"])
    assert copy.exit_code == 0, copy.output
    assert "restored 'copy'" in copy.stdout and "70 documents" in copy.stdout
    assert source.results("copy") == source.results("papers")
    again = runner.invoke(cli.app, ["restore", "collection", str(out), "--name", "copy"])
    assert again.exit_code != 0 and isinstance(again.exception, Conflict)
    replaced = runner.invoke(cli.app, ["restore", "collection", str(out), "--name", "copy", "--replace"])
    assert replaced.exit_code == 0 and "replaced" in replaced.stdout

    dump = tmp_path / "registry.json"
    reg = runner.invoke(cli.app, ["backup", "registry", "-o", str(dump)])
    assert reg.exit_code == 0, reg.output
    assert json.loads(dump.read_text())["format"] == "counterpoint-registry-dump"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    loaded = runner.invoke(cli.app, ["restore", "registry", str(dump), "--database-url", target])
    assert loaded.exit_code == 0, loaded.output
    assert "2 collections" in loaded.stdout
    with Registry.from_url(target) as restored:
        assert [c.name for c in restored.list_collections()] == ["copy", "papers"]
    twice = runner.invoke(cli.app, ["restore", "registry", str(dump), "--database-url", target])
    assert twice.exit_code != 0 and isinstance(twice.exception, Conflict)

    assert "--replace" in runner.invoke(cli.app, ["restore", "collection", "--help"]).stdout
    assert "--offline" in runner.invoke(cli.app, ["backup", "collection", "--help"]).stdout


def test_cli_offline_restores_into_a_stopped_platforms_data_dir(
    source: Gateway,
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_embedder: TextEmbedder,
) -> None:
    """`--offline` works on the data directory itself: the platform there is stopped."""
    from counterpoint.settings import get_settings

    data_dir = tmp_path / "offline"
    monkeypatch.setenv("COUNTERPOINT_DATA_DIR", str(data_dir))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(cli.app, ["restore", "collection", str(archive), "--offline"])
        assert result.exit_code == 0, result.output
        again = runner.invoke(cli.app, ["backup", "collection", "papers", "--offline", "-o", str(tmp_path)])
        assert again.exit_code == 0, again.output
    finally:
        get_settings.cache_clear()
    later = Gateway(data_dir, tiny_embedder)  # the platform starts again on that data dir
    try:
        assert later.results("papers") == source.results("papers")
    finally:
        later.close()


def test_cli_errors_are_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Through the real entry point (`python -m counterpoint`): bad files never reach the gateway."""
    import os
    import subprocess
    import sys

    bad = tmp_path / "registry.json"
    bad.write_text("{not json")
    env = {**os.environ, "COUNTERPOINT_DATA_DIR": str(tmp_path / "data")}
    for args, message in [
        (["restore", "collection", str(tmp_path / "missing.cpbackup.tar.gz")], "no such backup file"),
        (["restore", "registry", str(bad)], "is not JSON"),
        (["restore", "registry", str(bad.with_name("nope.json"))], "no such dump file"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "counterpoint", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        assert message in " ".join(done.stderr.split()) and "Traceback" not in done.stderr  # rich may wrap
