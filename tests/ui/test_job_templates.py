"""Job config templates from examples/ and their local validation."""

from __future__ import annotations

import sys

import pytest

from counterpoint.ui import job_templates


def test_templates_are_the_examples() -> None:
    found = job_templates.templates()
    assert found, "no job templates in examples/"
    for title, config in found.items():
        assert title.endswith(".yaml)") and "data" in config
        assert job_templates.validate_config(config) is None, title
    assert "batch_size" in (
        job_templates.validate_config({"data": {"path": "x.jsonl"}, "batch_size": 1}) or ""
    )


def test_optional_packages_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slim UI image may lack the training package or PyYAML: the jobs page degrades, not crashes."""
    monkeypatch.setitem(sys.modules, "counterpoint.workers.config", None)
    assert job_templates.validate_config({"batch_size": 1}) is None  # the gateway validates instead
    monkeypatch.setitem(sys.modules, "yaml", None)
    assert job_templates.templates() == {}
