"""Bulk upload of precomputed vectors end to end: SDK `upload_vectors` and `counterpoint collections
upload-vectors` against the real gateway app in this process (tiny 32-d model, embedded Qdrant).

Each format lands and is found by its own vectors; ``resume`` skips what is stored; a bad file is one
clear error and uploads nothing."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from counterpoint import cli
from counterpoint.cli.app import main
from counterpoint.client import Client
from counterpoint.errors import InvalidInput
from tests.services.in_process import tiny_gateway_sdk

DIMS = 32
N = 23  # with batch_size=5: four full batches and a short one


@pytest.fixture()
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    with tiny_gateway_sdk(tmp_path) as sdk:
        monkeypatch.setattr(cli, "client", lambda: sdk)
        sdk.create_collection("vecs", payload_indexes={"year": "integer"})
        yield sdk


def matrix(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIMS)).astype(np.float32)


def write(
    tmp_path: Path, kind: str, values: np.ndarray, ids: list[str] | None = None
) -> tuple[Path, Path | None]:
    """``values`` as a file of ``kind``; text ``doc i`` and metadata year 2000+i on every point."""
    ids = ids or [f"v{i}" for i in range(len(values))]
    meta = [{"year": 2000 + i} for i in range(len(values))]
    if kind == "jsonl":
        path = tmp_path / "v.jsonl"
        rows = [
            {"id": p, "vector": v.tolist(), "text": f"doc {i}", "metadata": m}
            for i, (p, v, m) in enumerate(zip(ids, values, meta, strict=True))
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path, None
    if kind == "npy":
        path, lines = tmp_path / "v.npy", tmp_path / "ids.jsonl"
        np.save(path, values)
        rows = [
            {"id": p, "text": f"doc {i}", "metadata": m}
            for i, (p, m) in enumerate(zip(ids, meta, strict=True))
        ]
        lines.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path, lines
    path = tmp_path / "v.parquet"
    table = pa.table(
        {
            "id": ids,
            "vector": pa.array(values.tolist(), type=pa.list_(pa.float32())),
            "text": [f"doc {i}" for i in range(len(values))],
            "year": [m["year"] for m in meta],  # an extra column: goes into the metadata
        }
    )
    pq.write_table(table, path, row_group_size=7)
    return path, None


@pytest.mark.parametrize("kind", ["jsonl", "npy", "parquet"])
def test_each_format_uploads_and_is_found_by_its_vectors(gateway: Client, tmp_path: Path, kind: str) -> None:
    values = matrix()
    path, payloads = write(tmp_path, kind, values)
    checked, progress = [], []
    result = gateway.upload_vectors(
        "vecs", path, payloads=payloads, batch_size=5, on_checked=checked.append, on_progress=progress.append
    )
    assert (result.received, result.indexed, result.skipped, result.count) == (N, N, 0, N)
    assert checked == [N] and sorted(progress) == [3, 5, 5, 5, 5]
    for i in (0, 11, N - 1):
        hit = gateway.search("vecs", vector=values[i].tolist(), top_k=1).hits[0]
        assert (hit.id, hit.text, hit.metadata) == (f"v{i}", f"doc {i}", {"year": 2000 + i})
    recent = gateway.search(
        "vecs",
        vector=values[0].tolist(),
        top_k=50,
        filter={"must": [{"key": "year", "range": {"gte": 2020}}]},
    ).hits
    assert sorted(h.id for h in recent) == ["v20", "v21", "v22"]


def test_resume_skips_what_is_stored(gateway: Client, tmp_path: Path) -> None:
    values = matrix()
    first, _ = write(tmp_path, "jsonl", values[:10])
    assert gateway.upload_vectors("vecs", first, batch_size=4).indexed == 10
    whole, _ = write(tmp_path, "jsonl", values)
    again = gateway.upload_vectors("vecs", whole, batch_size=4, resume=True)
    assert (again.received, again.indexed, again.skipped, again.count) == (N, N - 10, 10, N)
    low = gateway.upsert_vectors("vecs", ["extra", 7], values[:2] * 0.5, [{"text": "x"}, {}])
    assert (low.indexed, low.count) == (2, N + 2)
    assert gateway.search("vecs", vector=values[1].tolist(), top_k=1).hits[0].id in ("v1", "7")


def _bad(tmp_path: Path, kind: str) -> tuple[Path, Path | None, str]:
    values = matrix()
    if kind == "dims":
        path, extra = write(tmp_path, "npy", matrix()[:, :30])
        return path, extra, "vectors have 30 dimensions; the collection has 32"
    if kind == "nan":
        values[17, 3] = np.nan
        path, extra = write(tmp_path, "parquet", values)
        return path, extra, "row 18: vector 'v17' contains NaN or infinity"
    if kind == "dup":
        ids = [f"v{i}" for i in range(N)]
        ids[20] = "v2"
        path, extra = write(tmp_path, "jsonl", values, ids)
        return path, extra, "line 21: id 'v2' appears more than once"
    if kind == "truncated-jsonl":
        path, extra = write(tmp_path, "jsonl", values)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) - 40])
        return path, extra, f"line {N} is not valid JSON"
    if kind == "truncated-npy":
        path, extra = write(tmp_path, "npy", values)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) - 64])
        return path, extra, "is truncated: its header says 23 x 32 float32"
    path, extra = write(tmp_path, "parquet", values)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    return path, extra, "is not a readable Parquet file"


BAD = ["dims", "nan", "dup", "truncated-jsonl", "truncated-npy", "corrupt-parquet"]


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_file_uploads_nothing(gateway: Client, tmp_path: Path, kind: str) -> None:
    gateway.upsert_vectors("vecs", ["keep"], matrix(1, seed=9))
    path, payloads, words = _bad(tmp_path, kind)
    with pytest.raises(InvalidInput) as caught:
        gateway.upload_vectors("vecs", path, payloads=payloads, batch_size=5)
    assert words in caught.value.message
    assert gateway.get_collection("vecs").count == 1  # nothing half-written


def test_cli_uploads_with_a_summary(gateway: Client, tmp_path: Path) -> None:
    path, payloads = write(tmp_path, "npy", matrix())
    args = [
        "collections",
        "upload-vectors",
        "vecs",
        str(path),
        "--payloads",
        str(payloads),
        "--batch-size",
        "6",
    ]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert f"stored {N}, skipped 0 of {N} vectors; 'vecs' now holds {N} points" in " ".join(
        result.stdout.split()
    )
    again = CliRunner().invoke(cli.app, [*args, "--resume"])
    assert f"stored 0, skipped {N} of {N}" in " ".join(again.stdout.split())
    usage = CliRunner().invoke(cli.app, ["collections", "upload-vectors", "--help"])
    assert "--resume" in usage.stdout and ".parquet" in usage.stdout


@pytest.mark.parametrize("kind", ["dup", "truncated-npy"])
def test_cli_bad_file_is_one_line_without_traceback(
    gateway: Client,
    tmp_path: Path,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, payloads, words = _bad(tmp_path, kind)
    argv = ["counterpoint", "collections", "upload-vectors", "vecs", str(path)]
    monkeypatch.setattr(sys, "argv", argv + (["--payloads", str(payloads)] if payloads else []))
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    stderr = " ".join(capsys.readouterr().err.split())  # rich wraps long lines at the console's width
    assert stderr.count("error:") == 1 and "Traceback" not in stderr
    assert words in stderr.split("error:")[1]  # the message closes the output, after the progress bar
    assert gateway.get_collection("vecs").count == 0
