"""Compare runs: params side by side, overlaid curves, final metrics, and alignment vs uniformity.

Runs are read from MLflow, the system of record for training runs. The alignment–uniformity plot
(Wang & Isola, 2020) puts one point per evaluated step: lower-left is better on both.
"""

from __future__ import annotations

import html
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from counterpoint.ui import common

MAX_RUNS = 200
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a",
]  # fmt: skip


def run_label(run: Any) -> str:
    """``name · run id · status``: the pick list's label (the charts use the part before the status)."""
    name = run.info.run_name or run.info.run_id[:8]
    return f"{name} · {run.info.run_id[:6]} · {run.info.status.lower()}"


def short_label(label: str) -> str:
    return label.rsplit(" · ", 1)[0]


def default_runs(runs: list[Any], n: int = 3) -> list[Any]:
    """The latest finished runs that logged metrics, else the latest runs."""
    useful = [
        r
        for r in runs
        if r.info.status == "FINISHED" and any(not k.startswith("system/") for k in r.data.metrics)
    ]
    return (useful or runs)[:n]


def params_table(runs: list[Any], labels: list[str], only_diff: bool) -> pd.DataFrame:
    keys = sorted({k for r in runs for k in r.data.params})
    frame = pd.DataFrame(
        {lab: [r.data.params.get(k, "") for k in keys] for lab, r in zip(labels, runs, strict=True)}
    )
    frame.index = keys
    differs = frame.nunique(axis=1) > 1
    return frame[differs] if only_diff else frame


def highlight_differences(frame: pd.DataFrame) -> Any:
    """A Styler that colours the rows whose values differ between runs."""

    def colour(row: pd.Series) -> list[str]:
        style = "background-color: rgba(255, 196, 0, 0.25)" if row.nunique() > 1 else ""
        return [style] * len(row)

    return frame.style.apply(colour, axis=1)


@st.cache_data(ttl=15, show_spinner=False)
def history(run_id: str, key: str) -> list[tuple[int, float]]:
    ml = common.mlflow_client()
    return [(m.step, m.value) for m in ml.get_metric_history(run_id, key)]


def histories(runs: list[Any], labels: list[str], keys: list[str]) -> pd.DataFrame:
    rows = []
    for run, label in zip(runs, labels, strict=True):
        for key in keys:
            if key in run.data.metrics:
                rows += [
                    {"run": label, "metric": key, "step": s, "value": v}
                    for s, v in history(run.info.run_id, key)
                ]
    return pd.DataFrame(rows, columns=["run", "metric", "step", "value"])


def run_colours(labels: list[str]) -> alt.Color:
    """One fixed colour per run across every chart; the legend is drawn once by `legend`."""
    return alt.Color("run:N", scale=alt.Scale(domain=labels, range=PALETTE[: len(labels)]), legend=None)


def legend(labels: list[str]) -> None:
    """The runs' colours as one HTML line (Streamlit squeezes a chart whose own legend is long)."""
    items = [
        f'<span style="color:{PALETTE[i]}; font-size:1.2em">●</span>&nbsp;{html.escape(label)}'
        for i, label in enumerate(labels)
    ]
    st.markdown("&emsp;".join(items), unsafe_allow_html=True)


def find_key(keys: set[str], name: str) -> str | None:
    """The metric named ``name`` or ending in ``/name`` (``eval/alignment``), if any run logged it."""
    matches = sorted(k for k in keys if k == name or k.endswith(f"/{name}"))
    return matches[0] if matches else None


def alignment_uniformity(runs: list[Any], labels: list[str]) -> None:
    keys = {k for r in runs for k in r.data.metrics}
    align, unif = find_key(keys, "alignment"), find_key(keys, "uniformity")
    if align is None or unif is None:
        st.info(
            "None of the selected runs logged both `alignment` and `uniformity`; runs with an "
            "evaluation section log them at each evaluation step.",
            icon=":material/info:",
        )
        return
    long = histories(runs, labels, [align, unif])
    wide = long.pivot_table(index=["run", "step"], columns="metric", values="value").reset_index().dropna()
    if wide.empty:
        st.info("No step has both alignment and uniformity logged yet.")
        return
    wide = wide.rename(columns={align: "alignment", unif: "uniformity"})
    base = alt.Chart(wide).encode(
        x=alt.X("uniformity:Q", scale=alt.Scale(zero=False), title="uniformity (lower is better)"),
        y=alt.Y("alignment:Q", scale=alt.Scale(zero=False), title="alignment (lower is better)"),
        color=run_colours(labels),
        tooltip=[
            "run",
            "step",
            alt.Tooltip("alignment:Q", format=".4f"),
            alt.Tooltip("uniformity:Q", format=".4f"),
        ],
    )
    chart = base.mark_line(opacity=0.4).encode(order="step:Q") + base.mark_point(filled=True, size=70)
    legend(labels)
    st.altair_chart(chart.properties(height=380), width="stretch")
    st.caption(
        "Wang & Isola (2020): alignment = E‖f(x) − f(y)‖² over positive pairs, uniformity = "
        "log E exp(−2‖f(x) − f(y)‖²) over all pairs; one point per evaluated step."
    )


# --- page ------------------------------------------------------------------------------------

common.page_header("Compare runs", "Training runs from MLflow, side by side.")
ml = common.mlflow_client()
if ml is None:
    st.warning("The `mlflow` package is not installed beside the dashboard; run history is unavailable.")
    st.stop()

experiments = common.call(ml.search_experiments, spinner="reading MLflow experiments")
if experiments is None:
    st.info(f"MLflow at {common.mlflow_ui_url()} is not reachable.")
    st.stop()
experiments = [e for e in experiments if e.lifecycle_stage == "active"]
if not experiments:
    st.info("No MLflow experiments yet: launch a training job on the Jobs page.")
    st.stop()
names = [e.name for e in experiments]
default = names.index("counterpoint") if "counterpoint" in names else 0
exp_name = st.selectbox("experiment", names, index=default, key="cmp_experiment")
experiment = experiments[names.index(exp_name)]
runs = common.call(
    ml.search_runs, [experiment.experiment_id], max_results=MAX_RUNS, order_by=["attributes.start_time DESC"]
)
if not runs:
    st.info(f"Experiment `{exp_name}` has no runs yet.")
    st.stop()
by_label = {run_label(r): r for r in runs}
picked = st.multiselect(
    "runs",
    list(by_label),
    default=[run_label(r) for r in default_runs(runs)],
    key=f"cmp_runs-{experiment.experiment_id}",  # a fresh pick (and default) per experiment
    max_selections=12,
)
if not picked:
    st.info("Pick at least one run.")
    st.stop()
selected = [by_label[p] for p in picked]
labels = [short_label(p) for p in picked]

st.subheader("Parameters")
only_diff = st.toggle(  # keyed per experiment, like the pick list: a 1-run experiment seen first
    "only the parameters that differ",  # must not leave the next experiment's default off
    value=len(selected) > 1,
    key=f"cmp_only_diff-{experiment.experiment_id}",
)
params = params_table(selected, labels, only_diff)
if params.empty:
    st.caption("The selected runs have identical parameters." if only_diff else "No parameters logged.")
else:
    st.dataframe(highlight_differences(params), width="stretch", height=min(600, 38 + 35 * len(params)))
    st.caption("Highlighted rows differ between the selected runs.")

st.subheader("Final metrics")
final = pd.DataFrame(
    [
        {"run": lab, **{k: v for k, v in r.data.metrics.items() if not k.startswith("system/")}}
        for lab, r in zip(labels, selected, strict=True)
    ]
).set_index("run")
st.dataframe(final.T if len(final.columns) > 8 else final, width="stretch")

st.subheader("Curves")
metric_keys = sorted({k for r in selected for k in r.data.metrics if not k.startswith("system/")})
defaults = [k for k in metric_keys if k == "train/loss" or k.startswith("eval/")][:6] or metric_keys[:3]
chosen = st.multiselect(
    "metrics", metric_keys, default=defaults, key=f"cmp_metrics-{experiment.experiment_id}"
)
if chosen:
    frame = common.call(histories, selected, labels, chosen, spinner="reading metric histories")
    if frame is not None and not frame.empty:
        legend(labels)
        for start in range(0, len(chosen), 2):
            cols = st.columns(2)
            for col, key in zip(cols, chosen[start : start + 2], strict=False):
                data = frame[frame["metric"] == key]
                chart = (
                    alt.Chart(data, title=key)
                    .mark_line(point=True)
                    .encode(
                        x="step:Q",
                        y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=None),
                        color=run_colours(labels),
                        tooltip=["run", "step", alt.Tooltip("value:Q", format=".4f")],
                    )
                    .properties(height=260)
                )
                col.altair_chart(chart, width="stretch")

st.subheader("Alignment and uniformity")
alignment_uniformity(selected, labels)

with st.expander("open in MLflow"):
    for lab, run in zip(labels, selected, strict=True):
        st.markdown(f"- [{lab}]({common.mlflow_run_url(run.info.experiment_id, run.info.run_id)})")
