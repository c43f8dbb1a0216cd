"""Overview: health of each part, links to the Ray dashboard and MLflow, and what the platform holds."""

from __future__ import annotations

import streamlit as st

from counterpoint.errors import CounterpointError
from counterpoint.ui import common, formatting

common.page_header("Counterpoint", "Train, serve and search contrastive embedding models.")
cp = common.client()
s = common.settings()

try:
    with st.spinner("asking the gateway"):
        health = cp.health()
except CounterpointError as exc:
    common.show_error(exc)
    st.info("Start the platform with `counterpoint up` (or `make up`), then reload this page.")
    st.stop()

st.subheader(f"Platform {formatting.badge(health.status)}")
cols = st.columns(len(health.components))
for col, (name, part) in zip(cols, health.components.items(), strict=True):
    with col.container(border=True):
        st.markdown(f"**{name}**")
        st.markdown(formatting.badge(part.status))
        if part.detail:
            st.caption(part.detail)

st.subheader("Contents")
collections = common.call(cp.list_collections) or []
models = common.call(cp.models) or []
jobs = common.call(cp.list_jobs) or []
active = [j for j in jobs if j.status in ("pending", "running")]
c1, c2, c3, c4 = st.columns(4)
c1.metric("collections", len(collections))
c2.metric("documents", f"{sum(c.count for c in collections):,}")
c3.metric("served models", len(models))
c4.metric("running jobs", len(active), help=f"{len(jobs)} jobs in total")

st.subheader("Links")
links = st.columns(4)
links[0].link_button("Ray dashboard", common.ray_dashboard_url(), icon=":material/hub:", width="stretch")
links[1].link_button("MLflow", common.mlflow_ui_url(), icon=":material/book_2:", width="stretch")
links[2].link_button("API docs", f"{s.gateway_url}/docs", icon=":material/description:", width="stretch")
links[3].link_button(
    "health (JSON)", f"{s.gateway_url}/healthz", icon=":material/health_and_safety:", width="stretch"
)
st.caption(f"gateway `{s.gateway_url}` · MLflow `{s.tracking_uri}` · Ray `{common.ray_dashboard_url()}`")
