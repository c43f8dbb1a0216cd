"""The collection page's Index tab and the index settings of the create form, with `AppTest`
against an in-process gateway (no running stack needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from counterpoint.client import Client
from counterpoint.ui import common
from tests.services.in_process import tiny_gateway_sdk

PAGE = Path(__file__).resolve().parents[2] / "ui" / "views" / "collections.py"


@pytest.fixture()
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    with tiny_gateway_sdk(tmp_path) as cp:
        monkeypatch.setattr(common, "client", lambda: cp)
        yield cp


def _run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_create_with_index_settings_then_check_recall(sdk: Client) -> None:
    at = _run(AppTest.from_file(str(PAGE), default_timeout=60))
    at.text_input(key="new_name").set_value("notes")
    at.number_input(key="new_m").set_value(8)
    at.number_input(key="new_hnsw_ef").set_value(40)
    at.selectbox(key="new_quant").set_value("on")
    at.selectbox(key="new_datatype").set_value("float16")
    next(b for b in at.button if b.label == "Create collection").click()
    _run(at)
    info = sdk.get_collection("notes")
    index = info.index
    assert (index.m, index.hnsw_ef, index.quantization, index.on_disk, index.datatype) == (
        8,
        40,
        True,
        None,
        "float16",
    )
    sdk.ingest("notes", [{"id": f"d{i}", "text": f"note {i} on topic {i % 3}"} for i in range(6)])
    _run(at)
    assert [m.value for m in at.metric if m.label == "index"] == ["ready"]
    assert [m.value for m in at.metric if m.label == "points in the graph"] == ["0 / 6"]
    at.button(key="recall-go-notes").click()
    _run(at)
    assert [m.value for m in at.metric if m.label == "recall@10"] == ["1.000"]
    captions = " ".join(c.value for c in at.caption)
    assert "m=8, hnsw_ef=40, quantization=True" in captions and "suggested search ef" in captions
    suggested = sdk.check_recall("notes").suggested_hnsw_ef
    at.button(key="recall-apply-notes").click()  # use the suggested ef
    _run(at)
    assert sdk.get_collection("notes").index.hnsw_ef == suggested != 40
