"""`counterpoint mine --collection`: the CLI drives `workers.mining.mine_collection` and writes triplets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from counterpoint import cli
from tests.workers.test_mining import FakeCollectionClient, beir_dir


def test_mine_from_a_collection_writes_triplets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCollectionClient(
        {"query one": {"d0": 0.9, "d4": 0.5, "d1": 0.8}, "query two": {"d2": 0.9, "d5": 0.4}}
    )
    monkeypatch.setattr(cli, "client", lambda: fake)
    out = tmp_path / "triplets.jsonl"
    args = ["mine", "--beir", str(beir_dir(tmp_path / "beir")), "--collection", "papers", "--out", str(out)]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert "wrote 3 triplets for 3 queries" in " ".join(result.stdout.split())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["negative"] for r in rows} == {"document 4", "document 5"}
    refused = CliRunner().invoke(cli.app, [*args[:-2], "--split", "test", "--out", str(out)])
    assert refused.exit_code != 0
