"""Counterpoint dashboard (Streamlit): the entry point `counterpoint up` runs (`streamlit run ui/app.py`).

A multipage app; every page lives in ``ui/views/`` and talks to the gateway through the SDK only
(``counterpoint.client.Client``), except run history and the model registry, read from MLflow.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Counterpoint", page_icon=":material/graphic_eq:", layout="wide")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/home:", default=True),
    st.Page("views/jobs.py", title="Jobs", icon=":material/model_training:"),
    st.Page("views/compare.py", title="Compare runs", icon=":material/monitoring:"),
    st.Page("views/models.py", title="Models", icon=":material/neurology:"),
    st.Page("views/collections.py", title="Collections", icon=":material/folder_data:"),
    st.Page("views/playground.py", title="Playground", icon=":material/science:"),
]

navigation = st.navigation(PAGES)
with st.sidebar:
    st.caption("Counterpoint · train, serve and search contrastive embedding models")
navigation.run()
