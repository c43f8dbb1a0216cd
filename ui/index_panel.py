"""The collection page's index parts: index settings in the create form, and the graph's state with
the recall check (recall@10 now, per search ef, and the ef that reaches 0.98)."""

from __future__ import annotations

from typing import Any, get_args

import pandas as pd
import streamlit as st

from counterpoint.client import Client
from counterpoint.schemas import INDEX_BOUNDS, CollectionInfo, VectorDatatype
from counterpoint.ui import common

TRI_STATE = {"default": None, "on": True, "off": False}


def _bounded_number(where: Any, label: str, key: str, help: str) -> Any:
    low, high = INDEX_BOUNDS[key]
    kind = float if isinstance(low, float) else int
    return where.number_input(label, kind(low), kind(high), value=None, key=f"new_{key}", help=help)


def index_settings_inputs() -> dict[str, Any]:
    """Inputs for a new collection's index settings (inside the create form); empty ones: the defaults."""
    with st.expander("index settings (HNSW, quantization, storage)", icon=":material/tune:"):
        c1, c2, c3 = st.columns(3)
        values = {
            "m": _bounded_number(c1, "m", "m", "Graph links per point (default 16)."),
            "ef_construct": _bounded_number(
                c2, "ef_construct", "ef_construct", "Build candidates (default 128)."
            ),
            "hnsw_ef": _bounded_number(c3, "search ef", "hnsw_ef", "Search candidates (default 128)."),
        }
        c4, c5, c6 = st.columns(3)
        quantization = c4.selectbox("int8 quantization", list(TRI_STATE), key="new_quant")
        values["oversampling"] = _bounded_number(
            c5, "oversampling", "oversampling", "Rescored per hit (default 2)."
        )
        on_disk = c6.selectbox(
            "vectors on disk",
            list(TRI_STATE),
            key="new_on_disk",
            help="default: on with int8 quantization and float32 vectors",
        )
        datatype = c4.selectbox(
            "vector type",
            ["default", *get_args(VectorDatatype)],
            key="new_datatype",
            help="default float32 (read back exactly); float16: half the memory and disk, same recall",
        )
    values["quantization"], values["on_disk"] = TRI_STATE[quantization], TRI_STATE[on_disk]
    values["datatype"] = None if datatype == "default" else datatype
    return values


def index_panel(cp: Client, info: CollectionInfo) -> None:
    """The graph's state and settings, and a button that runs the recall check."""
    c1, c2, c3 = st.columns(3)
    c1.metric("index", info.index_status)
    c2.metric("points in the graph", f"{info.indexed_points:,} / {info.count:,}")
    recall_key = f"recall-{info.name}"
    report = st.session_state.get(recall_key)
    c3.metric("recall@10", "-" if report is None else f"{report.recall:.3f}")
    chosen = ", ".join(f"{k}={v}" for k, v in info.index.model_dump(exclude_none=True).items())
    st.caption(f"index settings: {chosen or 'defaults'}. Graphs are built in the background after ingest.")
    samples = st.number_input("sample queries", 1, 1000, 100, key=f"recall-n-{info.name}")
    if st.button("Check recall", icon=":material/target:", key=f"recall-go-{info.name}"):
        report = common.call(cp.check_recall, info.name, samples=int(samples), spinner="searching exactly")
        if report is None:
            return
        st.session_state[recall_key] = report
        st.rerun()
    if report is not None:
        st.caption(
            f"{report.samples} queries: p50 {report.p50_ms:.2f} ms (exact {report.exact_p50_ms:.2f} ms); "
            + (
                f"suggested search ef for recall ≥ {report.target}: **{report.suggested_hnsw_ef}**"
                if report.suggested_hnsw_ef is not None
                else f"no search ef tried reaches {report.target}"
            )
        )
        rows = [{"search ef": s.hnsw_ef, "recall@10": s.recall, "p50 ms": s.p50_ms} for s in report.ladder]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        ef = report.suggested_hnsw_ef
        if ef is not None and ef != info.index.hnsw_ef:
            _apply_button(cp, info.name, ef, recall_key)


def _apply_button(cp: Client, name: str, ef: int, recall_key: str) -> None:
    """A button that sets the collection's search ef to the suggested one (the check is then stale)."""
    clicked = st.button(f"Use search ef {ef}", icon=":material/tune:", key=f"recall-apply-{name}")
    if clicked and common.call(cp.tune_search, name, hnsw_ef=ef, spinner="applying") is not None:
        st.session_state.pop(recall_key, None)  # measured with the old ef
        st.rerun()
