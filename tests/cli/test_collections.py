"""`counterpoint collections create` with index settings, `info`, `check-recall` and `tune`, against an
in-process gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from counterpoint import cli
from counterpoint.client import Client
from tests.services.in_process import tiny_gateway_sdk


@pytest.fixture()
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """The CLI's SDK client, talking to a real gateway app in this process."""
    with tiny_gateway_sdk(tmp_path) as sdk:
        monkeypatch.setattr(cli, "client", lambda: sdk)
        yield sdk


def _run(*args: str) -> str:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def test_create_with_index_settings_info_and_check_recall(gateway: Client) -> None:
    created = _run(
        "collections", "create", "notes", "--m", "8", "--hnsw-ef", "40", "--quantization", "--on-disk",
        "--datatype", "float16",
    )  # fmt: skip
    assert "m=8, hnsw_ef=40, quantization=True, on_disk=True, datatype=float16, lexical bm25" in created
    docs = [{"id": f"d{i}", "text": f"note number {i} about topic {i % 3}"} for i in range(12)]
    gateway.ingest("notes", docs)
    info = json.loads(_run("collections", "info", "notes"))
    assert info["index"]["m"] == 8 and info["index"]["ef_construct"] is None
    assert (info["count"], info["index_status"], info["indexed_points"]) == (12, "ready", 0)
    report = _run("collections", "check-recall", "notes", "--samples", "5")
    assert "recall@10 1.000 at hnsw_ef=40" in report and "5 queries, 0/12 points in the graph" in report
    assert "suggested: hnsw_ef=16" in report and "collections tune notes --hnsw-ef 16" in report
    tuned = _run("collections", "tune", "notes", "--hnsw-ef", "16")
    assert "hnsw_ef=16" in tuned and gateway.get_collection("notes").index.hnsw_ef == 16
    raw = json.loads(_run("collections", "check-recall", "notes", "-k", "3", "--json"))
    assert (raw["top_k"], raw["samples"]) == (3, 12)


def test_check_recall_errors_are_one_line(gateway: Client) -> None:
    result = CliRunner().invoke(cli.app, ["collections", "check-recall", "ghost"])
    assert result.exit_code != 0
    refused = CliRunner().invoke(cli.app, ["collections", "check-recall", "ghost", "--samples", "0"])
    assert refused.exit_code == 2 and "samples" in refused.output


def test_tune_needs_a_setting(gateway: Client) -> None:
    _run("collections", "create", "notes")
    result = CliRunner().invoke(cli.app, ["collections", "tune", "notes"])
    assert result.exit_code == 2 and "--hnsw-ef" in result.output
    result = CliRunner().invoke(cli.app, ["collections", "tune", "ghost", "--hnsw-ef", "8"])
    assert result.exit_code != 0 and "ghost" in str(result.exception)  # main() prints it as one line


def test_search_modes_from_the_command_line(gateway: Client) -> None:
    _run("collections", "create", "notes")
    _run("collections", "create", "plain", "--no-lexical")
    docs = [
        {"id": "a", "text": "Zebrafish embryos regenerate heart tissue."},
        {"id": "b", "text": "Mice were fed a high-fat diet."},
    ]
    gateway.ingest("notes", docs)
    gateway.ingest("plain", docs)
    lexical = json.loads(_run("search", "notes", "zebrafish", "--mode", "lexical", "--json"))
    assert [h["id"] for h in lexical["hits"]] == ["a"]
    table = _run("search", "notes", "zebrafish heart", "--mode", "hybrid", "--mmr", "0.5", "-k", "2")
    assert "dense" in table and "lexical" in table and "-" in table  # b shares no word: no lexical score
    for args, words in [
        (["search", "plain", "zebrafish", "--mode", "lexical"], ("no lexical", "bm25")),
        (["search", "notes", "zebrafish", "--mmr", "1.5"], ("mmr",)),
        (["search", "notes", "zebrafish", "--mode", "sparse"], ("sparse",)),
    ]:
        result = CliRunner().invoke(cli.app, args)
        # a platform error reaches `main`, which prints its message; a bad option is typer's usage error
        said = result.output + str(result.exception or "")
        assert result.exit_code != 0 and "Traceback" not in said, said
        for word in words:
            assert word in said, said
