"""What every page shares: readable error messages, the optional MLflow client (no stack needed)."""

from __future__ import annotations

import sys

import pytest

from counterpoint.errors import Forbidden, NotFound, Unauthorized, Unavailable
from counterpoint.ui import common


def test_error_text() -> None:
    assert common.error_text(NotFound("no collection 'x'")) == "not found (404): no collection 'x'"
    assert "is not reachable" in common.error_text(Unavailable("down"))
    assert "COUNTERPOINT_API_KEY" in common.error_text(Unauthorized("invalid API key"))
    assert "keys create" in common.error_text(Forbidden("needs 'write'"))
    assert common.error_text(RuntimeError("boom\nline two")) == "RuntimeError: boom"


def test_mlflow_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The slim UI image may lack mlflow: the pages that read it degrade, not crash."""
    monkeypatch.setitem(sys.modules, "mlflow", None)
    common._mlflow.clear()
    try:
        assert common._mlflow("http://127.0.0.1:9") is None
    finally:
        common._mlflow.clear()
