"""Collections: list and create them, upload documents, search with filters, evaluate with qrels."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from counterpoint.client import Client
from counterpoint.errors import CounterpointError
from counterpoint.schemas import CollectionInfo, FieldType
from counterpoint.ui import common, formatting, index_panel, search_inputs, uploads

UPLOAD_TYPES = ["jsonl", "ndjson", "json", "csv", "tsv", "gz"]
EVAL_CHUNK = 32  # queries per search_many call between progress updates


# --- create ----------------------------------------------------------------------------------


def create_form(cp: Client) -> None:
    served = [m.id for m in (common.call(cp.models) or []) if m.kind == "embedding"]
    with st.form("create_collection", border=False):
        c1, c2, c3 = st.columns([2, 2, 1])
        name = c1.text_input("name", key="new_name", placeholder="papers")
        model = c2.selectbox("embedding model", served or ["(default)"], key="new_model")
        distance = c3.selectbox("distance", ["cosine", "dot", "euclid"], key="new_distance")
        indexes_text = st.text_input(
            "payload indexes (metadata fields to filter on)",
            key="new_indexes",
            placeholder="year:integer, kind:keyword",
            help="FIELD:TYPE pairs, TYPE one of keyword, integer, float, bool.",
        )
        index = index_panel.index_settings_inputs()
        lexical = st.toggle(
            "lexical (BM25) vectors", value=True, key="new_lexical",
            help="For lexical and hybrid search: BM25 over each document's title and text.",
        )  # fmt: skip
        if not st.form_submit_button("Create collection", type="primary", icon=":material/add:"):
            return
    try:
        indexes = search_inputs.parse_indexes(indexes_text)
    except CounterpointError as exc:
        common.show_error(exc)
        return
    created = common.call(
        cp.create_collection,
        name.strip(),
        model=None if model == "(default)" else model,
        distance=distance,
        payload_indexes=indexes,
        index=index,
        lexical="bm25" if lexical else None,
        spinner="creating",
    )
    if created is not None:
        st.session_state["coll_pick"] = created.name
        st.session_state["coll_flash"] = f"Created collection **{created.name}** ({created.dimensions} dims)."
        st.rerun()


# --- upload ----------------------------------------------------------------------------------


def upload(cp: Client, info: CollectionInfo) -> None:
    st.caption("JSONL lines `{\"id\", \"text\", \"title\"?, \"metadata\"?}` (BEIR `_id` works) or a CSV "
               "with `id`, `text`, optional `title`; other CSV columns become metadata.")  # fmt: skip
    file = st.file_uploader("documents file", type=UPLOAD_TYPES, key=f"upload-{info.name}")
    if file is None:
        return
    try:
        docs = uploads.parse_documents(file.name, file.getvalue(), info.payload_indexes)
    except CounterpointError as exc:
        common.show_error(exc)
        return
    if not docs:
        st.warning(f"{file.name} holds no documents.")
        return
    st.dataframe(pd.DataFrame(docs[:5]), hide_index=True, width="stretch")
    c1, c2, c3 = st.columns([1, 1, 2])
    skip = c1.checkbox("skip ids already indexed", value=True, key=f"skip-{info.name}")
    batch = c2.selectbox("batch size", [32, 64, 128, 256], index=2, key=f"batch-{info.name}")
    if not c3.button(
        f"Ingest {len(docs):,} documents into {info.name}", type="primary", icon=":material/upload:"
    ):
        return
    bar = st.progress(0.0, text="embedding and indexing ...")
    sent = [0]

    def on_progress(n: int) -> None:
        sent[0] += n
        bar.progress(sent[0] / len(docs), text=f"{sent[0]:,} / {len(docs):,} documents")

    reply = common.call(
        cp.ingest, info.name, docs, batch_size=int(batch), skip_existing=skip, on_progress=on_progress
    )
    if reply is None:
        if sent[0]:
            st.info(f"{sent[0]:,} documents were indexed before the error; re-run with 'skip ids' to resume.")
        return
    st.success(
        f"Indexed {reply.indexed:,}, skipped {reply.skipped:,} already present; "
        f"{info.name} now holds {reply.count:,} documents.",
        icon=":material/check_circle:",
    )


# --- search ----------------------------------------------------------------------------------


def filter_rows(info: CollectionInfo) -> list[tuple[str, str, str]]:
    """The filter editor: rows of (field, operator, value) over the collection's indexed fields."""
    fields = list(info.payload_indexes)
    if not fields:
        st.caption(
            "No indexed metadata fields: declare payload indexes when creating a collection to filter."
        )
        return []
    state_key = f"filters-{info.name}"
    rows: list[int] = st.session_state.setdefault(state_key, [])
    result = []
    for row in list(rows):
        c1, c2, c3, c4 = st.columns([3, 2, 4, 1], vertical_alignment="bottom")
        field = c1.selectbox("field", fields, key=f"f-field-{info.name}-{row}")
        kind: FieldType = info.payload_indexes[field]
        ops = search_inputs.FILTER_OPS if kind in ("integer", "float") else search_inputs.FILTER_OPS[:4]
        op = c2.selectbox("operator", ops, key=f"f-op-{info.name}-{row}")
        value = c3.text_input(
            "value", key=f"f-value-{info.name}-{row}", placeholder="a, b, c" if "in" in op else kind
        )
        if c4.button(":material/close:", key=f"f-del-{info.name}-{row}", help="remove this condition"):
            rows.remove(row)
            st.rerun()
        result.append((field, op, value))
    if st.button("add a filter", icon=":material/add:", key=f"f-add-{info.name}"):
        rows.append(max(rows, default=-1) + 1)
        st.rerun()
    return result


def reranker_served(cp: Client) -> bool:
    return any(m.kind == "reranker" for m in common.call(cp.models) or [])


def retrieval_options(info: CollectionInfo, scope: str = "") -> dict[str, Any]:
    """The search mode row: dense / lexical / hybrid (the last two need the collection's BM25
    vectors), hybrid's fusion and lexical weight, and MMR diversity; the SDK's keyword arguments.
    ``scope`` prefixes the widget keys, so the Search and Evaluate tabs each have their own row."""
    modes = ["dense", "lexical", "hybrid"] if info.lexical else ["dense"]
    c1, c2, c3 = st.columns([3, 3, 3], vertical_alignment="bottom")
    mode = c1.radio(
        "mode",
        modes,
        horizontal=True,
        key=f"{scope}mode-{info.name}",
        help="dense: the embedding model · lexical: BM25 over title and text · hybrid: both, fused "
        "in the engine"
        if info.lexical
        else "This collection has no lexical (BM25) vectors: re-index it, or create one with them.",
    )
    options: dict[str, Any] = {"mode": mode}
    if mode == "hybrid":
        fusion = c2.selectbox(
            "fusion", ["dbsf", "rrf"], key=f"{scope}fu-{info.name}",
            help="dbsf: each stage's scores normalised, summed (the better on SciFact dev) · rrf: "
            "reciprocal rank fusion, weighted",
        )  # fmt: skip
        options["fusion"] = fusion
        if fusion == "rrf":
            options["lexical_weight"] = c3.slider(
                "lexical weight", 0.0, 1.0, 0.5, 0.1, key=f"{scope}lw-{info.name}",
                help="The lexical ranking's share of the fused one (dense: 1 - it).",
            )  # fmt: skip
    mmr = st.toggle("diversify (MMR)", key=f"{scope}mmr-on-{info.name}", help="Maximal marginal relevance over "
                    "the candidates' dense vectors: fewer near-duplicates in the top hits.")  # fmt: skip
    if mmr:
        options["mmr"] = st.slider("diversity", 0.0, 1.0, 0.3, 0.05, key=f"{scope}mmr-{info.name}")
    return options


def describe(options: dict[str, Any]) -> str:
    """The retrieval ``options`` in words: ``hybrid (rrf, lexical weight 0.3) + MMR 0.3``."""
    extra = [f"{options['fusion']}"] if "fusion" in options else []
    if "lexical_weight" in options:
        extra.append(f"lexical weight {options['lexical_weight']:g}")
    text = options["mode"] + (f" ({', '.join(extra)})" if extra else "")
    return text + (f" + MMR {options['mmr']:g}" if "mmr" in options else "")


def stage_line(scores: dict[str, float]) -> str:
    """A hybrid hit's score in each stage (a dash where it was not among that stage's candidates)."""
    return " · ".join(
        f"{stage} `{scores[stage]:.4f}`" if stage in scores else f"{stage} –"
        for stage in ("dense", "lexical")
    )


def search(cp: Client, info: CollectionInfo) -> None:
    c1, c2, c3 = st.columns([5, 1, 1])
    query = c1.text_input("query", key=f"q-{info.name}", placeholder="e.g. vitamin D and bone density")
    top_k = c2.number_input("top k", min_value=1, max_value=100, value=10, key=f"k-{info.name}")
    can_rerank = reranker_served(cp)
    rerank = c3.toggle(
        "rerank",
        key=f"rr-{info.name}",
        disabled=not can_rerank,
        help="Rescore the top 100 vector hits with the cross-encoder"
        if can_rerank
        else "No reranker is served (set COUNTERPOINT_RERANK_MODEL)",
    )
    fusion: float | None = None
    if rerank:
        weight = st.select_slider(
            "first-stage weight",
            options=["server default", *[round(0.1 * i, 1) for i in range(11)]],
            key=f"fw-{info.name}",
            help="Mix the vector score back into the reranked one (z-scored): 0 is the cross-encoder "
            "alone, 1 the vector order. Choose it on a dev split; the server default is the "
            "COUNTERPOINT_RERANK_FUSION setting.",
        )
        fusion = None if weight == "server default" else float(weight)
    options = retrieval_options(info)
    with st.expander("metadata filters", expanded=bool(st.session_state.get(f"filters-{info.name}"))):
        rows = filter_rows(info)
    try:
        qfilter = search_inputs.build_filter(rows, info.payload_indexes)
    except CounterpointError as exc:
        common.show_error(exc)
        return
    if not query.strip():
        return
    if qfilter:
        st.caption(f"filter `{qfilter}`")
    reply = common.call(
        cp.search,
        info.name,
        query,
        top_k=int(top_k),
        filter=qfilter,
        rerank=rerank,
        rerank_fusion=fusion,
        spinner="searching",
        **options,
    )
    if reply is None:
        return
    stages = " · ".join(f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in reply.timings.items())
    by = f" · reranked by `{reply.reranked_by}`" if reply.reranked_by else ""
    st.caption(f"{len(reply.hits)} hits in {reply.took_ms:.0f} ms ({stages}){by}")
    terms = search_inputs.query_terms(query)
    for rank, hit in enumerate(reply.hits, start=1):
        with st.container(border=True):
            title = search_inputs.highlight(hit.title or hit.id, terms)
            moved = ""
            if hit.first_stage_rank is not None:
                delta = hit.first_stage_rank - rank
                arrow = f":green[▲{delta}]" if delta > 0 else f":red[▼{-delta}]" if delta < 0 else "="
                moved = f" &nbsp; was #{hit.first_stage_rank} {arrow} (vector `{hit.first_stage_score:.4f}`)"
            st.markdown(
                f"**{rank}. {title}** &nbsp; score `{hit.score:.4f}` &nbsp; id `{hit.id}`{moved}",
                unsafe_allow_html=True,
            )
            if options["mode"] == "hybrid":
                st.caption(stage_line(hit.stage_scores))
            if hit.metadata:
                st.caption(" · ".join(f"{k} = {v}" for k, v in hit.metadata.items()))
            text = hit.text or ""
            more = "…" if len(text) > 700 else ""
            st.markdown(search_inputs.highlight(text[:700], terms) + more, unsafe_allow_html=True)


# --- evaluate --------------------------------------------------------------------------------


def _judged(cp: Client, info: CollectionInfo) -> tuple[dict[str, str], dict[str, dict[str, int]]] | None:
    source = st.radio(
        "judgements",
        ["upload queries + qrels", "shipped SciFact test split"],
        horizontal=True,
        key=f"ev-src-{info.name}",
    )
    if source.startswith("shipped"):
        from counterpoint.datasets import default_scifact

        data = default_scifact()
        qrels = data.qrels("test")
        return {q: data.queries[q] for q in qrels}, qrels
    c1, c2 = st.columns(2)
    qfile = c1.file_uploader(
        "queries (BEIR queries.jsonl or id<TAB>text)", type=UPLOAD_TYPES, key=f"ev-q-{info.name}"
    )
    rfile = c2.file_uploader(
        "qrels (TSV: query-id, corpus-id, score)", type=["tsv", "txt", "gz"], key=f"ev-r-{info.name}"
    )
    if qfile is None or rfile is None:
        st.caption("Upload both files to evaluate.")
        return None
    try:
        queries = uploads.parse_queries(qfile.name, qfile.getvalue())
        qrels = uploads.parse_qrels(rfile.name, rfile.getvalue())
    except CounterpointError as exc:
        common.show_error(exc)
        return None
    return queries, qrels


def evaluate(cp: Client, info: CollectionInfo) -> None:
    st.caption("Every judged query runs through this collection's search (top 100) in the mode chosen "
               "here; pytrec_eval scores the rankings as BEIR does.")  # fmt: skip
    options = retrieval_options(info, scope="ev-")
    judged = _judged(cp, info)
    if judged is None:
        return
    queries, qrels = judged
    missing = [q for q in qrels if q not in queries]
    if missing:
        st.warning(f"{len(missing)} judged queries have no text in the queries file; they score 0.")
    todo = {q: queries[q] for q in qrels if q in queries}
    if not st.button(
        f"Evaluate {len(qrels):,} judged queries",
        type="primary",
        icon=":material/target:",
        key=f"ev-go-{info.name}",
    ):
        return
    try:
        from counterpoint.evaluation import evaluate_run
    except ImportError:
        st.error(
            "Evaluation needs `pytrec-eval-terrier` installed beside the dashboard.", icon=":material/error:"
        )
        return
    bar = st.progress(0.0, text="searching")
    run: dict[str, dict[str, float]] = {}
    items = list(todo.items())
    for start in range(0, len(items), EVAL_CHUNK):  # progress is drawn here: st calls need this thread
        chunk = dict(items[start : start + EVAL_CHUNK])
        part = common.call(cp.search_many, info.name, chunk, top_k=100, **options)
        if part is None:
            return
        run.update(part)
        bar.progress(len(run) / max(1, len(items)), text=f"{len(run):,} / {len(items):,} queries")
    try:
        metrics = evaluate_run(run, qrels)
    except ValueError as exc:
        common.show_error(exc)
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("nDCG@10", f"{metrics.ndcg_at_10:.2f}")
    c2.metric("Recall@100", f"{metrics.recall_at_100:.2f}")
    c3.metric("MRR@10", f"{metrics.mrr_at_10:.2f}")
    c4.metric("queries", f"{metrics.n_queries:,}")
    st.caption(f"{describe(options)} · {metrics.summary()}")


# --- page ------------------------------------------------------------------------------------

common.page_header("Collections", "Vector collections: documents, search with filters, evaluation.")
cp = common.require_gateway()
if flash := st.session_state.pop("coll_flash", None):
    st.success(flash, icon=":material/check_circle:")

collections = common.call(cp.list_collections, spinner="listing collections")
if collections is None:
    st.stop()

if collections:
    table: list[dict[str, Any]] = [
        {
            "name": c.name,
            "documents": c.count,
            "model": c.model,
            "dims": c.dimensions,
            "distance": c.distance,
            "indexed fields": ", ".join(f"{k}:{v}" for k, v in c.payload_indexes.items()),
            "status": c.status,
            "index": f"{c.index_status} ({c.indexed_points:,} in graph)",
            "created": formatting.fmt_time(c.created_at),
        }
        for c in collections
    ]
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch")
else:
    st.info("No collections yet: create one below.")

with st.expander("Create a collection", expanded=not collections, icon=":material/add:"):
    create_form(cp)

if collections:
    names = [c.name for c in collections]
    if st.session_state.get("coll_pick") not in names:
        wanted = st.query_params.get("collection")
        st.session_state["coll_pick"] = wanted if wanted in names else names[0]
    name = st.selectbox("collection", names, key="coll_pick")
    st.query_params["collection"] = name
    info = next(c for c in collections if c.name == name)
    st.caption(f"{info.count:,} documents · {info.model} · {info.dimensions} dims · {info.distance}")
    tab_search, tab_upload, tab_eval, tab_index = st.tabs(
        [
            ":material/search: Search",
            ":material/upload: Upload",
            ":material/target: Evaluate",
            ":material/hub: Index",
        ]
    )
    with tab_search:
        search(cp, info)
    with tab_upload:
        upload(cp, info)
    with tab_eval:
        evaluate(cp, info)
    with tab_index:
        index_panel.index_panel(cp, info)
