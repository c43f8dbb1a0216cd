"""Models: what the gateway serves, and the MLflow model registry with versions, metrics and aliases."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from counterpoint.ui import common

CHAMPION = "champion"


def version_rows(ml: Any, name: str, aliases: dict[str, str]) -> list[dict[str, Any]]:
    """One row per version of registered model ``name``, with its aliases and its run's metrics.

    ``aliases`` (alias -> version) comes from the registered model: version searches leave them out.
    """
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    versions = ml.search_model_versions(f"name='{name}'")
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        metrics: dict[str, float] = {}
        if v.run_id:
            try:
                metrics = {
                    k.removeprefix("eval/"): round(val, 4)
                    for k, val in ml.get_run(v.run_id).data.metrics.items()
                    if k.startswith("eval/") or k == "train/loss"
                }
            except Exception:  # noqa: BLE001 - a deleted run leaves the version without metrics
                metrics = {}
        created = pd.to_datetime(v.creation_timestamp, unit="ms", utc=True) if v.creation_timestamp else None
        rows.append(
            {
                "version": str(v.version),
                "aliases": ", ".join(sorted({*(v.aliases or []), *by_version.get(str(v.version), [])})),
                "status": v.status,
                "created": common.fmt_time(created.to_pydatetime()) if created is not None else "—",
                "run": (v.run_id or "")[:8],
                **metrics,
            }
        )
    return rows


def registered_model(ml: Any, model: Any) -> None:
    name = model.name
    with st.container(border=True):
        head, link = st.columns([4, 1])
        aliases = model.aliases or {}
        badge = (
            f" :green-badge[:material/trophy: {CHAMPION}: v{aliases[CHAMPION]}]"
            if CHAMPION in aliases
            else ""
        )
        head.markdown(f"#### {name}{badge}")
        if model.description:
            head.caption(model.description)
        link.link_button("MLflow", common.mlflow_model_url(name), icon=":material/book_2:", width="stretch")
        rows = common.call(version_rows, ml, name, dict(aliases))
        if not rows:
            st.caption("No versions.")
            return
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        versions = [r["version"] for r in rows]
        c1, c2, c3 = st.columns([2, 2, 3])
        current = str(aliases.get(CHAMPION, versions[0]))
        chosen = c1.selectbox(
            "version",
            versions,
            index=versions.index(current) if current in versions else 0,
            key=f"ver-{name}",
        )
        if c2.button(f"Set as {CHAMPION}", key=f"champ-{name}", icon=":material/trophy:", width="stretch"):
            try:
                with st.spinner("setting the alias"):
                    ml.set_registered_model_alias(name, CHAMPION, chosen)
            except Exception as exc:  # noqa: BLE001 - shown as a message
                common.show_error(exc)
            else:
                st.session_state["models_flash"] = f"`{name}@{CHAMPION}` now points to version {chosen}."
                st.rerun()
        c3.button(
            "Deploy to the embed service",
            key=f"deploy-{name}",
            icon=":material/deployed_code:",
            disabled=True,
            width="stretch",
            help="Future work: the embed deployment serves the packaged model; serving a registry "
            f"alias (models:/{name}@{CHAMPION}) is planned.",
        )


# --- page ------------------------------------------------------------------------------------

common.page_header("Models", "What the gateway serves, and the MLflow model registry.")
cp = common.require_gateway()
if flash := st.session_state.pop("models_flash", None):
    st.success(flash, icon=":material/trophy:")

st.subheader("Served by the gateway")
served = common.call(cp.models, spinner="asking the gateway") or []
if served:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": m.id,
                    "kind": m.kind,
                    "dimensions": m.dimensions,
                    "context length": getattr(m, "context_length", None),
                    "owned by": m.owned_by,
                }
                for m in served
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("The gateway serves no model.")

st.subheader("Registered in MLflow")
ml = common.mlflow_client()
if ml is None:
    st.warning("The `mlflow` package is not installed beside the dashboard; the registry is unavailable.")
    st.stop()
registered = common.call(ml.search_registered_models, spinner="reading the MLflow registry")
if registered is None:
    st.stop()
if not registered:
    st.info("No registered models yet: a training job with `register_as: NAME` registers its result.")
for model in registered:
    registered_model(ml, model)
st.info(
    "Deploying a registered version to the embed service is future work: today the gateway serves "
    "the packaged model. The `champion` alias marks the version a deployment will follow.",
    icon=":material/construction:",
)
