"""`local_model`: paths and names pass through; registry references resolve or fail naming their origin."""

from __future__ import annotations

from pathlib import Path

import pytest

from counterpoint.errors import InvalidInput
from counterpoint.infra.tracking import local_model


def test_paths_and_packaged_names_pass_through_untouched(tmp_path: Path) -> None:
    for ref in ("all-MiniLM-L6-v2", str(tmp_path), "some/dir"):
        assert local_model(ref, None, tmp_path / "cache", where="--model") == ref
    assert not (tmp_path / "cache").exists()  # nothing downloaded, nothing created


def test_a_registry_reference_without_tracking_uri_names_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"--retriever: models:/x@champion is an MLflow reference"):
        local_model("models:/x@champion", None, tmp_path, where="--retriever")


def test_a_missing_registered_model_is_invalid_input_naming_the_field(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(InvalidInput, match=r"config field 'model': .*does not exist"):
        local_model("models:/nope@champion", uri, tmp_path / "cache", where="config field 'model'")


def test_cli_mine_with_an_unknown_registry_model_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from counterpoint import cli
    from counterpoint.cli import mining
    from counterpoint.datasets import default_scifact_dir
    from counterpoint.settings import Settings

    settings = Settings(data_dir=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(mining, "get_settings", lambda: settings)
    argv = ["counterpoint", "mine", "--beir", str(default_scifact_dir()), "--model", "models:/nope@champion"]
    monkeypatch.setattr("sys.argv", [*argv, "--out", str(tmp_path / "negatives.jsonl")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "--model: models:/nope@champion does not exist in the MLflow model registry" in err
    assert "Traceback" not in err and not (tmp_path / "negatives.jsonl").exists()
