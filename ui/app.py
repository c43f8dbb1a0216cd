"""Counterpoint dashboard (Streamlit). Talks to the gateway through the SDK only.

This first page shows the platform's health and lets you search a collection; the
dashboard issue grows it into the multipage app (jobs, runs, models, playground).
"""

from __future__ import annotations

import streamlit as st

from counterpoint.client import Client
from counterpoint.errors import CounterpointError
from counterpoint.settings import get_settings

st.set_page_config(page_title="Counterpoint", page_icon="🎼", layout="wide")
settings = get_settings()
client = Client(settings.gateway_url, timeout=30)

st.title("Counterpoint")
st.caption("Train, serve and search contrastive embedding models.")

try:
    health = client.health()
    collections = client.list_collections()
except CounterpointError as exc:
    st.error(f"The gateway at {settings.gateway_url} is not reachable: {exc.message}")
    st.stop()

cols = st.columns(len(health.components) + 1)
cols[0].metric("platform", health.status)
for col, (name, part) in zip(cols[1:], health.components.items(), strict=True):
    col.metric(name, part.status, help=part.detail)

st.subheader("Search")
if not collections:
    st.info("No collections yet: create one with `counterpoint collections create NAME`.")
    st.stop()
names = [c.name for c in collections]
left, right = st.columns([1, 3])
name = left.selectbox("collection", names)
info = next(c for c in collections if c.name == name)
left.write(f"{info.count} documents · {info.model} · {info.dimensions} dims")
top_k = left.slider("top k", 1, 50, 10)
query = right.text_input("query", placeholder="e.g. vitamin D and bone density")
if query:
    try:
        with st.spinner("searching"):
            reply = client.search(name, query, top_k=top_k)
    except CounterpointError as exc:
        right.error(exc.message)
    else:
        right.caption(f"{len(reply.hits)} hits in {reply.took_ms:.0f} ms")
        for rank, hit in enumerate(reply.hits, start=1):
            with right.container(border=True):
                st.markdown(f"**{rank}. {hit.title or hit.id}** · score `{hit.score:.4f}` · id `{hit.id}`")
                st.write((hit.text or "")[:600])
