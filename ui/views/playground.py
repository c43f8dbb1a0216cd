"""Playground: try the endpoints. A similarity matrix of a few sentences, and streamed text generation
with each decoding method (greedy, sampling, contrastive search, contrastive decoding)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from counterpoint.client import Client
from counterpoint.decoding.params import DECODING_METHODS
from counterpoint.errors import CounterpointError
from counterpoint.ui import common

EXAMPLES = """A man is playing a guitar.
Someone is strumming a guitar on stage.
A woman is slicing an onion.
Vitamin D deficiency is linked to low bone density.
Low vitamin D levels are associated with weaker bones."""


def similarity(vectors: list[list[float]]) -> np.ndarray:
    """Cosine similarity matrix (the gateway returns unit vectors; normalised again to be safe)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return matrix @ matrix.T


def heatmap(sentences: list[str], sims: np.ndarray) -> alt.LayerChart:
    """Cosine similarities as a labelled heatmap: rows name the sentences, columns number them."""
    labels = [f"{i + 1}. {s[:48]}{'…' if len(s) > 48 else ''}" for i, s in enumerate(sentences)]
    numbers = [str(i + 1) for i in range(len(sentences))]
    rows = [
        {"a": labels[i], "b": numbers[j], "other": labels[j], "similarity": float(sims[i, j])}
        for i in range(len(sentences))
        for j in range(len(sentences))
    ]
    base = alt.Chart(pd.DataFrame(rows)).encode(
        x=alt.X("b:N", sort=numbers, title=None, axis=alt.Axis(labelAngle=0, orient="top")),
        y=alt.Y("a:N", sort=labels, title=None, axis=alt.Axis(labelLimit=340)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(
            "similarity:Q", scale=alt.Scale(scheme="viridis", domain=[-0.2, 1.0]), title="cosine"
        ),
        tooltip=["a", "other", alt.Tooltip("similarity:Q", format=".3f")],
    )
    text = base.mark_text(fontSize=13).encode(
        text=alt.Text("similarity:Q", format=".2f"),
        color=alt.condition(alt.datum.similarity > 0.6, alt.value("black"), alt.value("white")),
    )
    return (cells + text).properties(height=max(200, 46 * len(sentences)), title="cosine similarity")


def embeddings_panel(cp: Client) -> None:
    models = [m.id for m in (common.call(cp.models) or []) if m.kind == "embedding"]
    left, right = st.columns([2, 1])
    text = left.text_area("sentences, one per line", EXAMPLES, height=180, key="pg_sentences")
    model = right.selectbox("model", models or ["(default)"], key="pg_model")
    dims = right.number_input(
        "dimensions (0: full)", min_value=0, value=0, step=16, key="pg_dims", help="Matryoshka truncation."
    )
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if len(sentences) < 2:
        st.info("Enter at least two sentences.")
        return
    if len(sentences) > 24:
        st.warning("Showing the first 24 sentences.")
        sentences = sentences[:24]
    reply = common.call(
        cp.embed,
        sentences,
        model=None if model == "(default)" else model,
        dimensions=int(dims) or None,
        spinner="embedding",
    )
    if reply is None:
        return
    vectors = [item.embedding for item in sorted(reply.data, key=lambda d: d.index)]
    sims = similarity(vectors)  # type: ignore[arg-type]
    st.altair_chart(heatmap(sentences, sims), width="stretch")
    off = sims[~np.eye(len(sentences), dtype=bool)]
    i, j = np.unravel_index(np.argmax(np.where(np.eye(len(sentences), dtype=bool), -2, sims)), sims.shape)
    st.caption(
        f"{reply.model} · {len(vectors[0])} dims · {reply.usage.total_tokens} tokens · most similar pair: "
        f"{i + 1} and {j + 1} ({sims[i, j]:.3f}) · mean off-diagonal {off.mean():.3f}"
    )
    with st.expander("raw vectors (first 8 dimensions)"):
        st.dataframe(
            pd.DataFrame([v[:8] for v in vectors], index=[s[:50] for s in sentences]), width="stretch"
        )


DECODING_HELP = {
    "greedy": "the most likely token each step",
    "sampling": "temperature / top-k / top-p sampling",
    "contrastive_search": "Su et al. 2022: likely tokens that are unlike the context (less repetition)",
    "contrastive_decoding": "Li et al. 2023: expert minus amateur log-probabilities",
}


def _decoding_options(method: str, where: Any) -> dict[str, Any]:
    """The options of one decoding method, as widgets; returns the request fields."""
    if method == "sampling":
        top_k = where.number_input("top k (0: all)", min_value=0, max_value=1000, value=50, key="pg_top_k")
        seed = where.number_input("seed (-1: random)", min_value=-1, value=0, key="pg_seed")
        return {
            "temperature": where.slider("temperature", 0.0, 2.0, 0.8, 0.05, key="pg_temperature"),
            "top_p": where.slider("top p", 0.05, 1.0, 0.95, 0.05, key="pg_top_p"),
            "top_k": int(top_k) or None,
            "seed": None if seed < 0 else int(seed),
        }
    if method == "contrastive_search":
        return {
            "penalty_alpha": where.slider("degeneration penalty α", 0.0, 1.0, 0.6, 0.05, key="pg_penalty"),
            "top_k": where.slider("candidates k", 2, 16, 4, key="pg_cs_k"),
        }
    if method == "contrastive_decoding":
        layers = where.number_input("amateur layers (0: half)", min_value=0, value=0, key="pg_amateur_layers")
        return {
            "cd_alpha": where.slider("plausibility α", 0.0, 1.0, 0.1, 0.05, key="pg_cd_alpha"),
            "amateur_layers": int(layers) or None,
            "amateur_temperature": where.slider(
                "amateur temperature", 0.1, 2.0, 1.0, 0.1, key="pg_amateur_t"
            ),
        }
    return {}


def _quality(cp: Client, prompt: str, text: str) -> str:
    """rep-2, diversity and coherence (Su et al. 2022) of a continuation, as a caption."""
    try:
        from counterpoint.decoding.metrics import coherence, diversity, rep_n
    except ImportError:
        return ""
    parts = [f"rep-2 {rep_n(text, 2):.1f}%", f"diversity {diversity(text):.2f}"]
    if text.strip():
        with contextlib.suppress(Exception):  # the measure is a bonus
            parts.append(f"coherence {coherence(prompt, text, cp.embed_array):.3f}")
    return " · ".join(parts)


def _generate(cp: Client, endpoint: str, prompt: str, params: dict[str, Any]) -> None:
    """Stream one generation into the page, then its finish reason, speed and quality."""
    start = time.perf_counter()
    if endpoint == "chat":
        stream = common.call(cp.stream_chat, prompt, **params)
    else:
        stream = common.call(cp.stream_complete, prompt, **params)
    if stream is None:
        return
    try:
        with st.container(border=True):
            if endpoint == "completion":
                st.caption(prompt)
            st.write_stream(stream)
    except CounterpointError as exc:
        common.show_error(exc)
        return
    finally:
        stream.close()
    seconds = time.perf_counter() - start
    tokens = stream.usage.completion_tokens if stream.usage else None
    speed = f" · {tokens / seconds:.1f} tokens/s" if tokens else ""
    st.caption(
        f"{params['decoding']} · finish: {stream.finish_detail or stream.finish_reason or '?'} · "
        f"{tokens if tokens is not None else '?'} tokens in {seconds:.1f} s{speed} · {_quality(cp, prompt, stream.text)}"
    )


def generation_panel(cp: Client) -> None:
    if not all(callable(getattr(cp, m, None)) for m in ("stream_chat", "stream_complete")):
        st.text_area(
            "prompt", "Explain contrastive learning in one sentence.", disabled=True, key="pg_prompt"
        )
        st.button("Generate", disabled=True, icon=":material/auto_awesome:", key="pg_generate")
        st.info(
            "Future work: this SDK has no generation methods yet (`Client.stream_chat`).",
            icon=":material/construction:",
        )
        return
    lms = [m for m in (common.call(cp.models) or []) if m.kind == "causal-lm"]
    if not lms:
        st.text_area(
            "prompt", "Explain contrastive learning in one sentence.", disabled=True, key="pg_prompt"
        )
        st.button("Generate", disabled=True, icon=":material/auto_awesome:", key="pg_generate")
        st.info(
            "This gateway serves no causal LM: text generation is off "
            "(start it with `COUNTERPOINT_DECODE_ENABLED=true`).",
            icon=":material/info:",
        )
        return
    left, right = st.columns([2, 1])
    endpoint = right.radio("endpoint", ["chat", "completion"], horizontal=True, key="pg_endpoint")
    default = (
        "Explain contrastive learning in one sentence."
        if endpoint == "chat"
        else "The key idea of contrastive learning is"
    )
    prompt = left.text_area(
        "message" if endpoint == "chat" else "prompt", default, height=120, key=f"pg_prompt_{endpoint}"
    )
    model = right.selectbox("model", [m.id for m in lms], key="pg_lm")
    compare = right.toggle("compare every decoding method", key="pg_compare")
    method = "greedy"
    if not compare:
        method = right.selectbox(
            "decoding",
            DECODING_METHODS,
            format_func=lambda m: m.replace("_", " "),
            key="pg_decoding",
            help="; ".join(f"{k}: {v}" for k, v in DECODING_HELP.items()),
        )
    max_tokens = right.slider("max tokens", 8, 256, 64, 8, key="pg_max_tokens")
    options = {} if compare else _decoding_options(method, right)
    if not left.button("Generate", type="primary", icon=":material/auto_awesome:", key="pg_generate"):
        return
    if not prompt.strip():
        left.warning("Write a prompt first.")
        return
    base = {"model": model, "max_tokens": int(max_tokens)}
    if not compare:
        with left:
            _generate(cp, endpoint, prompt, {**base, "decoding": method, **options})
        return
    cols = st.columns(len(DECODING_METHODS))
    for col, name in zip(cols, DECODING_METHODS, strict=True):
        with col:
            st.markdown(f"**{name.replace('_', ' ')}**")
            _generate(
                cp, endpoint, prompt, {**base, "decoding": name, "seed": 0 if name == "sampling" else None}
            )


# --- page ------------------------------------------------------------------------------------

common.page_header("Playground", "Try the endpoints.")
cp = common.require_gateway()
st.subheader("Embeddings: similarity matrix")
embeddings_panel(cp)
st.subheader("Text generation")
generation_panel(cp)
