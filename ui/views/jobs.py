"""Jobs: launch a training job from a template, watch every job live, and inspect one in detail."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, get_args

import altair as alt
import pandas as pd
import streamlit as st

from counterpoint.client import Client
from counterpoint.schemas import JobInfo
from counterpoint.ui import common, formatting, job_templates

REFRESH_S = 3
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes in Ray's logs
CUSTOM = "Custom (paste a YAML config)"

try:
    from counterpoint.workers.config import LossName

    LOSSES: tuple[str, ...] = get_args(LossName)
except ImportError:  # the slim UI image: the gateway still validates
    LOSSES = ("mnrl", "simcse", "simcse_supervised", "debiased", "cosent")


# --- launch ----------------------------------------------------------------------------------


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _parse_custom(text: str) -> dict[str, Any] | str:
    """The pasted config as a mapping, or the reason it is not one."""
    try:
        import yaml
    except ImportError:  # a slim image without PyYAML: JSON still works
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"The config is not valid JSON (PyYAML is not installed): {exc}"
    else:
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return f"The config is not valid YAML: {exc}"
    if not isinstance(config, dict):
        return "The config must be a mapping of fields."
    return config


def _base_config() -> dict[str, Any] | str | None:
    """The chosen template's config; for a pasted config, the mapping, an error text, or None (empty)."""
    choice = st.session_state.get("job_template")
    found = job_templates.templates()
    if choice in found:
        return copy.deepcopy(found[choice])
    text = st.session_state.get("job_custom_yaml") or ""
    return _parse_custom(text) if text.strip() else None


def _form_values(config: dict[str, Any]) -> dict[str, Any]:
    loss = config.get("loss")
    loss_name = loss.get("name", "mnrl") if isinstance(loss, dict) else "mnrl"
    return {
        "job_name": str(config.get("name") or "finetune"),
        "job_model": str(config.get("model") or "all-MiniLM-L6-v2"),
        "job_loss": loss_name if loss_name in LOSSES else LOSSES[0],
        "job_batch_size": _int(config.get("batch_size"), 32),
        "job_lr": _float(config.get("lr"), 2e-5),
        "job_epochs": _int(config.get("epochs"), 1),
        "job_max_steps": _int(config.get("max_steps"), 0),
        "job_max_len": _int(config.get("max_seq_length"), 128),
        "job_workers": _int(config.get("workers"), 1),
    }


def _load_template() -> None:
    """Fill the form from the chosen template (called when the template or the pasted config changes)."""
    base = _base_config()
    st.session_state.update(_form_values(base if isinstance(base, dict) else {}))


def launch_form(cp: Client) -> None:
    """Template picker + the main settings, validated locally, then submitted to the gateway."""
    options = [*job_templates.templates(), CUSTOM]
    if st.session_state.get("job_template") not in options:
        st.session_state["job_template"] = options[0]
    st.selectbox("template", options, key="job_template", on_change=_load_template)
    if st.session_state["job_template"] == CUSTOM:
        st.text_area(
            "config (YAML or JSON)",
            height=220,
            key="job_custom_yaml",
            on_change=_load_template,
            placeholder="name: my-job\ndata:\n  path: pairs.jsonl\nloss:\n  name: mnrl",
        )
    base = _base_config()
    if base is None:
        st.info("Paste a config (see `examples/` for complete ones); the fields below override it.")
        return
    if isinstance(base, str):
        st.error(base, icon=":material/error:")
        return
    if "job_name" not in st.session_state:
        _load_template()
    with st.form("launch_job", border=True):
        c1, c2, c3 = st.columns(3)
        c1.text_input("job name", key="job_name")
        c2.text_input("base model", key="job_model", help="A packaged model name or a local directory.")
        c3.selectbox("loss", LOSSES, key="job_loss")
        c1.number_input("batch size", step=1, key="job_batch_size")
        c2.number_input("learning rate", step=1e-5, format="%.1e", key="job_lr")
        c3.number_input("epochs", step=1, key="job_epochs")
        c1.number_input("max steps (0: run the epochs)", step=1, key="job_max_steps")
        c2.number_input("max length (tokens)", step=8, key="job_max_len")
        c3.number_input("workers", step=1, key="job_workers", help="Ray Train workers.")
        submitted = st.form_submit_button(
            "Validate and launch", type="primary", icon=":material/rocket_launch:"
        )
    if not submitted:
        return
    values = st.session_state
    config = copy.deepcopy(base)
    config.update(
        name=str(values["job_name"]).strip(),
        model=str(values["job_model"]).strip(),
        batch_size=int(values["job_batch_size"]),
        lr=float(values["job_lr"]),
        epochs=int(values["job_epochs"]),
        max_steps=None if int(values["job_max_steps"]) == 0 else int(values["job_max_steps"]),
        max_seq_length=int(values["job_max_len"]),
        workers=int(values["job_workers"]),
    )
    config["loss"] = {**(config.get("loss") or {}), "name": values["job_loss"]}
    problem = job_templates.validate_config(config)
    if problem:
        st.error(f"Not submitted, the config is invalid: {problem}", icon=":material/error:")
        return
    job = common.call(cp.submit_job, config, spinner="validating the data and submitting to Ray")
    if job is not None:
        st.session_state["job_pick"] = job.id
        st.session_state["job_flash"] = f"Submitted job **{job.name}** (`{job.id}`)."
        st.rerun()


# --- list ------------------------------------------------------------------------------------


def _job_row(job: JobInfo) -> dict[str, Any]:
    fraction, eta = formatting.job_progress(job)
    loss = job.metrics.get("train/loss")
    return {
        "status": job.status,
        "name": job.name,
        "id": job.id,
        "progress": fraction,
        "step": job.metrics.get("step"),
        "ETA": formatting.fmt_duration(eta) if job.status == "running" else "",
        "loss": round(loss, 4) if isinstance(loss, float) else None,
        "created": formatting.fmt_time(job.created_at),
        "error": (job.error or "").splitlines()[0][:120] if job.error else "",
    }


@st.fragment(run_every=REFRESH_S)
def job_list(cp: Client) -> None:
    jobs = common.call(cp.list_jobs)
    if jobs is None:
        return
    if not jobs:
        st.info("No jobs yet: launch one above.")
        return
    active = sum(j.status in ("pending", "running") for j in jobs)
    st.caption(f"{len(jobs)} jobs, {active} pending or running · refreshed every {REFRESH_S} s")
    st.dataframe(
        pd.DataFrame([_job_row(j) for j in jobs]),
        hide_index=True,
        width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent"
            ),
            "id": st.column_config.TextColumn("id", width="small"),
        },
    )


# --- one job ---------------------------------------------------------------------------------


def metric_history(run_id: str, prefixes: tuple[str, ...]) -> pd.DataFrame:
    """Long frame (metric, step, value) of the run's metrics whose names start with ``prefixes``."""
    ml = common.mlflow_client()
    if ml is None:
        return pd.DataFrame(columns=["metric", "step", "value"])
    run = ml.get_run(run_id)
    rows = []
    for key in sorted(run.data.metrics):
        if key.startswith(prefixes):
            rows += [
                {"metric": key, "step": m.step, "value": m.value} for m in ml.get_metric_history(run_id, key)
            ]
    return pd.DataFrame(rows, columns=["metric", "step", "value"])


def curves(frame: pd.DataFrame, *, height: int = 220) -> None:
    """One small line chart per metric (their scales differ), three per row."""
    names = list(dict.fromkeys(frame["metric"]))
    for start in range(0, len(names), 3):
        cols = st.columns(3)
        for col, name in zip(cols, names[start : start + 3], strict=False):
            data = frame[frame["metric"] == name].sort_values("step")
            chart = (
                alt.Chart(data, title=name)
                .mark_line(point=len(data) < 40)
                .encode(
                    x=alt.X("step:Q"),
                    y=alt.Y("value:Q", scale=alt.Scale(zero=False), title=None),
                    tooltip=["step", alt.Tooltip("value:Q", format=".4f")],
                )
                .properties(height=height)
            )
            col.altair_chart(chart, width="stretch")


@st.fragment(run_every=REFRESH_S)
def job_detail(cp: Client, job_id: str) -> None:
    job = common.call(cp.get_job, job_id)
    if job is None:
        return
    fraction, eta = formatting.job_progress(job)
    head, actions = st.columns([3, 2])
    head.markdown(f"### {job.name} {formatting.badge(job.status)}")
    head.caption(
        f"id `{job.id}` · ray `{job.ray_job_id or '—'}` · created {formatting.fmt_time(job.created_at)}"
        f" · updated {formatting.fmt_time(job.updated_at)}"
    )
    run_url = None
    ml = common.mlflow_client()
    if job.mlflow_run_id and ml is not None:
        try:
            run_url = common.mlflow_run_url(
                ml.get_run(job.mlflow_run_id).info.experiment_id, job.mlflow_run_id
            )
        except Exception:  # noqa: BLE001 - the link is optional
            run_url = None
    b1, b2 = actions.columns(2)
    if b1.button(
        "Cancel job", icon=":material/cancel:", disabled=job.finished, key=f"cancel-{job.id}", width="stretch"
    ):
        cancelled = common.call(cp.cancel_job, job.id, spinner="cancelling")
        if cancelled is not None:
            st.toast(f"job {job.name} is {cancelled.status}")
            job = cancelled
    b2.link_button(
        "MLflow run",
        run_url or common.mlflow_ui_url(),
        icon=":material/book_2:",
        disabled=run_url is None,
        width="stretch",
    )

    if job.error:
        st.error(job.error.strip()[:2000], icon=":material/error:")
    step = job.metrics.get("step")
    total = job.metrics.get("total_steps") or job.config.get("max_steps")
    if fraction is not None:
        st.progress(fraction, text=f"step {formatting.fmt_number(step)} of {formatting.fmt_number(total)}"
                    + (f" · ETA {formatting.fmt_duration(eta)}" if eta is not None and not job.finished else ""))  # fmt: skip
    numbers = {k: v for k, v in job.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    headline = {k: v for k, v in numbers.items() if k == "train/loss" or k.startswith("eval/")}
    if headline:
        cols = st.columns(min(6, len(headline)))
        for i, (key, value) in enumerate(sorted(headline.items())[:12]):
            cols[i % len(cols)].metric(key, formatting.fmt_number(value))
    rest = {k: v for k, v in numbers.items() if k not in headline and k not in ("step", "total_steps")}
    if rest:
        st.caption(" · ".join(f"{k} {formatting.fmt_number(v, 3)}" for k, v in sorted(rest.items())))

    if job.mlflow_run_id and ml is not None:
        try:
            history = metric_history(job.mlflow_run_id, ("train/loss", "eval/"))
        except Exception as exc:  # noqa: BLE001
            common.show_error(exc)
            history = None
        if history is not None and not history.empty:
            st.markdown("**Loss and evaluation curves** (MLflow)")
            curves(history)
        elif history is not None:
            st.caption("No metrics logged yet.")
    elif ml is None:
        st.caption("Install `mlflow` beside the dashboard to see the run's curves.")

    with st.expander("logs (last 200 lines)", expanded=not job.finished or job.status == "failed"):
        logs = common.call(cp.job_logs, job.id, tail=200)
        st.code(ANSI.sub("", logs or "") or "(no output yet)", language="text", height=300)
    with st.expander("config"):
        st.json(job.config)


# --- page ------------------------------------------------------------------------------------

common.page_header("Jobs", "Fine-tune a bi-encoder on Ray Train; progress and metrics update live.")
cp = common.require_gateway()

if flash := st.session_state.pop("job_flash", None):
    st.success(flash, icon=":material/rocket_launch:")

with st.expander("Launch a training job", expanded=True, icon=":material/rocket_launch:"):
    launch_form(cp)

st.subheader("All jobs")
job_list(cp)

jobs = common.call(cp.list_jobs) or []
if jobs:
    st.subheader("Job")
    ids = [j.id for j in jobs]
    labels = {j.id: f"{j.name} · {j.id[:8]} · {j.status}" for j in jobs}
    if st.session_state.get("job_pick") not in ids:
        wanted = st.query_params.get("job")
        st.session_state["job_pick"] = wanted if wanted in ids else ids[0]
    selected = st.selectbox("job", ids, format_func=labels.get, key="job_pick")
    st.query_params["job"] = selected
    job_detail(cp, selected)
