"""Every dashboard page, rendered with Streamlit's `AppTest` against the real running platform.

The app runs in this process (AppTest), its SDK calls go over HTTP to the stack of
`tests/ui/conftest.py`; MLflow runs and registered models are written to the stack's MLflow server.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from counterpoint.evaluation import evaluate_run
from counterpoint.models.export import split_backend
from counterpoint.settings import get_settings
from tests.ui.conftest import APP, COLLECTION, RAY_AGENT_BUSY, UIStack

pytestmark = pytest.mark.e2e

Open = Callable[[str], AppTest]


@pytest.fixture
def open_page(ui_env: UIStack) -> Open:
    """Run the app and switch to a page (``overview``, ``jobs``, ...); the page must not raise."""

    def open_(page: str) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.run()
        if page != "overview":
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return open_


def texts(at: AppTest) -> str:
    """Every Markdown, caption and alert text of the page, joined."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [a.value for kind in ("error", "warning", "info", "success") for a in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def widget(items: Any, label: str) -> Any:
    found = [w for w in items if w.label == label]
    assert found, f"no widget labelled {label!r}: {[w.label for w in items]}"
    return found[0]


# --- overview ------------------------------------------------------------------------------


def test_overview_shows_health_and_counts(open_page: Open) -> None:
    at = open_page("overview")
    page = texts(at)
    for part in ("database", "embed", "vectors", "serve", "mlflow"):
        assert f"**{part}**" in page
    assert "check_circle: ok]" in page and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["collections"]) >= 1 and int(metrics["served models"]) >= 1
    assert "running jobs" in metrics


def test_unreachable_gateway_is_a_message_not_a_traceback(
    ui_env: UIStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COUNTERPOINT_API_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    try:
        for page in ("overview", "collections", "jobs", "playground"):
            at = AppTest.from_file(str(APP), default_timeout=60)
            at.run()
            if page != "overview":
                at.switch_page(f"views/{page}.py").run()
            assert not at.exception, (page, [e.message for e in at.exception])
            assert at.error and "not reachable" in at.error[0].value, page
            assert "counterpoint up" in texts(at)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


# --- collections ---------------------------------------------------------------------------


def test_collections_list_and_search_with_highlights(open_page: Open) -> None:
    at = open_page("collections")
    table = at.dataframe[0].value
    assert COLLECTION in list(table["name"])
    at.selectbox(key="coll_pick").set_value(COLLECTION)
    at.text_input(key=f"q-{COLLECTION}").set_value("dropout for contrastive sentence embeddings")
    run(at)
    page = texts(at)
    assert "hits in" in page
    hits = [m.value for m in at.markdown if "score `" in m.value]
    assert hits and "SimCSE" in hits[0]
    assert "<mark>contrastive</mark>" in page and "<mark>embeddings</mark>" in page
    assert "reranked by" not in page and "was #" not in page

    at.toggle(key=f"rr-{COLLECTION}").set_value(True)
    run(at)
    page = texts(at)
    assert "reranked by `" in page and "rerank" in page
    reranked = [m.value for m in at.markdown if "score `" in m.value]
    assert reranked and all("was #" in h for h in reranked)  # each hit shows its first-stage rank

    at.select_slider(key=f"fw-{COLLECTION}").set_value(1.0)  # all first stage: the vector order back
    run(at)
    fused = [m.value for m in at.markdown if "score `" in m.value]
    assert fused and all(f"was #{rank} =" in h for rank, h in enumerate(fused, start=1)), fused


def test_search_modes_show_each_stage(open_page: Open) -> None:
    at = open_page("collections")
    at.selectbox(key="coll_pick").set_value(COLLECTION)
    at.text_input(key=f"q-{COLLECTION}").set_value("SimCSE dropout")
    at.radio(key=f"mode-{COLLECTION}").set_value("lexical")
    run(at)
    lexical = [m.value for m in at.markdown if "score `" in m.value]
    assert lexical and "SimCSE" in lexical[0]
    assert not any(c.value.startswith("dense ") for c in at.caption)  # stage scores: hybrid only
    at.radio(key=f"mode-{COLLECTION}").set_value("hybrid")
    run(at)
    stages = [c.value for c in at.caption if c.value.startswith("dense ")]
    assert stages and "lexical `" in stages[0]  # the best hit matched both ways
    at.toggle(key=f"mmr-on-{COLLECTION}").set_value(True)
    run(at)
    assert [m.value for m in at.markdown if "score `" in m.value]


def test_search_with_metadata_filters(open_page: Open) -> None:
    at = open_page("collections")
    at.selectbox(key="coll_pick").set_value(COLLECTION)
    at.button(key=f"f-add-{COLLECTION}").click()
    run(at)
    at.selectbox(key=f"f-field-{COLLECTION}-0").set_value("year")
    at.selectbox(key=f"f-op-{COLLECTION}-0").set_value(">=")
    at.text_input(key=f"f-value-{COLLECTION}-0").set_value("2020")
    at.text_input(key=f"q-{COLLECTION}").set_value("sentence embeddings")
    run(at)
    years = [int(c.value.split("year = ")[1].split()[0]) for c in at.caption if "year = " in c.value]
    assert years and all(y >= 2020 for y in years)
    assert len(years) == 3  # simcse 2021, align 2020, gte 2023

    at.selectbox(key=f"f-op-{COLLECTION}-0").set_value("=")
    at.text_input(key=f"f-value-{COLLECTION}-0").set_value("not-a-year")
    run(at)
    assert any("'not-a-year' is not a valid integer" in e.value for e in at.error)


def test_create_collection_and_upload_csv(open_page: Open, ui_env: UIStack) -> None:
    at = open_page("collections")
    at.text_input(key="new_name").set_value("bad name!")
    at.button(key="FormSubmitter:create_collection-Create collection").click()
    run(at)
    assert any("name must be 1-63 letters" in e.value for e in at.error)

    at.text_input(key="new_name").set_value("uploads")
    at.text_input(key="new_indexes").set_value("year:integer, topic:keyword")
    at.button(key="FormSubmitter:create_collection-Create collection").click()
    run(at)
    assert "Created collection **uploads**" in texts(at)
    assert at.selectbox(key="coll_pick").value == "uploads"

    csv = b"id,title,text,year,topic\nc1,Cats,Cats purr when they are content.,2020,pets\nc2,Stars,Neutron stars are dense.,2021,space\n"
    at.file_uploader(key="upload-uploads").set_value(("extra.csv", csv, "text/csv"))
    run(at)
    widget(at.button, "Ingest 2 documents into uploads").click()
    run(at)
    assert "Indexed 2, skipped 0" in texts(at)
    cp = ui_env.client()
    assert cp.get_collection("uploads").count == 2
    hits = cp.search("uploads", "astronomy", filter={"must": [{"key": "year", "range": {"gte": 2021}}]}).hits
    assert [h.id for h in hits] == ["c2"] and hits[0].metadata == {"year": 2021, "topic": "space"}


def test_evaluate_against_uploaded_qrels(open_page: Open, ui_env: UIStack) -> None:
    queries = {
        "q1": "dropout as data augmentation for sentence embeddings",
        "q2": "vitamin D and bone density",
    }
    qrels = {"q1": {"simcse": 1}, "q2": {"vitd": 1, "bananas": 0}}
    at = open_page("collections")
    at.selectbox(key="coll_pick").set_value(COLLECTION)
    queries_file = "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in queries.items()).encode()
    qrels_file = "query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{g}\n" for q, docs in qrels.items() for d, g in docs.items()
    )
    at.file_uploader(key=f"ev-q-{COLLECTION}").set_value(("queries.jsonl", queries_file, "application/json"))
    at.file_uploader(key=f"ev-r-{COLLECTION}").set_value(
        ("qrels.tsv", qrels_file.encode(), "text/tab-separated-values")
    )
    run(at)
    at.button(key=f"ev-go-{COLLECTION}").click()
    run(at)
    shown = {m.label: m.value for m in at.metric}
    expected = evaluate_run(ui_env.client().search_many(COLLECTION, queries, top_k=100), qrels)
    assert shown["nDCG@10"] == f"{expected.ndcg_at_10:.2f}"
    assert shown["Recall@100"] == f"{expected.recall_at_100:.2f}"
    assert shown["MRR@10"] == f"{expected.mrr_at_10:.2f}"
    assert shown["queries"] == "2"
    assert any(c.value.startswith("dense · ") for c in at.caption)
    at.radio(key=f"ev-mode-{COLLECTION}").set_value("lexical")  # the same judgements, scored on BM25
    run(at)
    at.button(key=f"ev-go-{COLLECTION}").click()
    run(at)
    shown = {m.label: m.value for m in at.metric}
    lexical = evaluate_run(ui_env.client().search_many(COLLECTION, queries, top_k=100, mode="lexical"), qrels)
    assert (shown["nDCG@10"], shown["MRR@10"]) == (f"{lexical.ndcg_at_10:.2f}", f"{lexical.mrr_at_10:.2f}")
    assert any(c.value.startswith("lexical · ") for c in at.caption)


# --- jobs ----------------------------------------------------------------------------------


def _choose_template(at: AppTest, word: str) -> None:
    box = at.selectbox(key="job_template")
    box.set_value(next(o for o in box.options if word in o))
    run(at)


def _submit(at: AppTest) -> None:
    at.button(key="FormSubmitter:launch_job-Validate and launch").click()
    run(at)


def test_job_form_reports_a_bad_value_before_submitting(open_page: Open, ui_env: UIStack) -> None:
    before = len(ui_env.client().list_jobs())
    at = open_page("jobs")
    _choose_template(at, "STS-B")
    widget(at.number_input, "batch size").set_value(1)
    _submit(at)
    errors = [e.value for e in at.error]
    assert any("Not submitted" in e and "batch_size" in e for e in errors), errors
    assert len(ui_env.client().list_jobs()) == before


def test_job_form_shows_the_gateway_error(open_page: Open, ui_env: UIStack) -> None:
    at = open_page("jobs")
    _choose_template(at, "Custom")
    at.text_area(key="job_custom_yaml").set_value(
        "name: missing-data\ndata:\n  path: /nonexistent/pairs.jsonl\n"
    )
    run(at)
    _submit(at)
    errors = [e.value for e in at.error]
    assert any(e.startswith("invalid request (422)") and "/nonexistent/pairs.jsonl" in e for e in errors), (
        errors
    )


def test_launch_watch_and_cancel_a_job(open_page: Open, ui_env: UIStack) -> None:
    at = open_page("jobs")
    _choose_template(at, "STS-B")
    widget(at.text_input, "job name").set_value("apptest-job")
    widget(at.number_input, "max steps (0: run the epochs)").set_value(1)
    widget(at.number_input, "batch size").set_value(4)
    _submit(at)
    jobs = [j for j in ui_env.client().list_jobs() if j.name == "apptest-job"]
    assert len(jobs) == 1, "the form did not reach the gateway"
    job = jobs[0]
    assert (
        job.config["max_steps"] == 1
        and job.config["batch_size"] == 4
        and job.config["loss"]["name"] == "cosent"
    )
    if "Submitted job **apptest-job**" not in texts(at):
        # the gateway recorded the job but Ray refused it: shown as a readable error, not a traceback
        errors = [e.value for e in at.error]
        assert any(RAY_AGENT_BUSY in e for e in errors), errors
        warnings.warn(
            f"Ray's job agent was busy (another Ray cluster on this machine): {errors}", stacklevel=1
        )
        return
    assert at.selectbox(key="job_pick").value == job.id
    assert "apptest-job" in list(at.dataframe[0].value["name"])
    assert any("### apptest-job" in m.value for m in at.markdown)
    at.button(key=f"cancel-{job.id}").click()
    run(at)
    assert ui_env.client().get_job(job.id).finished


# --- MLflow: compare runs and models -------------------------------------------------------


@pytest.fixture(scope="module")
def mlflow_runs(ui_env: UIStack) -> Iterator[dict[str, Any]]:
    """Three runs in their own experiment: two with alignment/uniformity, one without; a registered model."""
    ml = MlflowClient(tracking_uri=ui_env.mlflow_url)
    experiment = ml.create_experiment("ui-compare")
    runs = {}
    for name, lr, with_au in (("run-a", "2e-05", True), ("run-b", "5e-05", True), ("run-c", "1e-04", False)):
        run_ = ml.create_run(experiment, run_name=name)
        rid = run_.info.run_id
        for key, value in {"lr": lr, "batch_size": "32", "loss.name": "mnrl"}.items():
            ml.log_param(rid, key, value)
        for step in range(1, 6):
            ml.log_metric(rid, "train/loss", 2.0 / step + float(lr) * 1e3, step=step)
            if with_au and step % 2 == 0:
                ml.log_metric(rid, "eval/alignment", 0.5 - 0.05 * step, step=step)
                ml.log_metric(rid, "eval/uniformity", -2.0 - 0.2 * step, step=step)
                ml.log_metric(rid, "eval/ndcg_at_10", 60 + step, step=step)
        ml.set_terminated(rid)
        runs[name] = run_
    single = ml.create_run(ml.create_experiment("ui-single"), run_name="alone")  # one run: nothing differs
    ml.log_param(single.info.run_id, "lr", "1e-05")
    ml.set_terminated(single.info.run_id)
    ml.create_registered_model("ui-model")
    for name in ("run-a", "run-b"):  # versions 1 and 2: metadata only, no model files behind them
        r = runs[name]
        ml.create_model_version("ui-model", source=f"{r.info.artifact_uri}/model", run_id=r.info.run_id)
    yield {"experiment": experiment, "runs": runs, "client": ml}


@pytest.fixture(scope="module")
def real_version(
    mlflow_runs: dict[str, Any], ui_env: UIStack, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """Version 3 of ui-model: a real (tiny) sentence-transformers model the embed service can load."""
    import mlflow
    from sentence_transformers import SentenceTransformer

    from counterpoint.infra.tracking import log_sentence_transformer, register_model
    from tests.tiny_models import build_tiny_bi_encoder

    path = build_tiny_bi_encoder(tmp_path_factory.mktemp("ui-model"))
    mlflow.set_tracking_uri(ui_env.mlflow_url)
    with mlflow.start_run(experiment_id=mlflow_runs["experiment"], run_name="run-real"):
        info = log_sentence_transformer(SentenceTransformer(str(path), device="cpu"), name="model")
    return register_model(info.model_uri, "ui-model", ui_env.mlflow_url)


def test_compare_runs(open_page: Open, mlflow_runs: dict[str, Any]) -> None:
    at = open_page("compare")
    at.selectbox(key="cmp_experiment").set_value("ui-single")  # a 1-run experiment seen first
    run(at)
    at.selectbox(key="cmp_experiment").set_value("ui-compare")  # must still default to "only differ"
    run(at)
    runs = widget(at.multiselect, "runs")
    picked = runs.value
    assert len(picked) == 3
    params = at.dataframe[0].value
    assert list(params.index) == ["lr"]  # only the differing parameter by default
    assert "Highlighted rows differ" in texts(at)
    final = at.dataframe[1].value
    assert "train/loss" in list(final.columns) + list(final.index)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    titles = [json.dumps(s) for s in specs]
    assert any('"train/loss"' in t for t in titles)
    scatter = [t for t in titles if "uniformity (lower is better)" in t]
    assert scatter, "no alignment-uniformity scatter"

    only_c = [p for p in runs.options if p.startswith("run-c")]
    runs.set_value(only_c)
    run(at)
    assert "None of the selected runs logged both `alignment` and `uniformity`" in texts(at)


def test_models_page_sets_the_champion_and_deploys(
    open_page: Open, mlflow_runs: dict[str, Any], real_version: str, ui_env: UIStack, tmp_path: Path
) -> None:
    at = open_page("models")
    assert "all-MiniLM-L6-v2" in [split_backend(i)[0] for i in at.dataframe[0].value["id"]]
    assert any("ui-model" in m.value for m in at.markdown)
    at.selectbox(key="ver-ui-model").set_value("2")
    at.button(key="champ-ui-model").click()
    run(at)
    assert "`models:/ui-model@champion` now points to version 2" in texts(at)
    assert mlflow_runs["client"].get_registered_model("ui-model").aliases == {"champion": "2"}
    assert any("champion: v2" in m.value for m in at.markdown)

    at.button(key="deploy-ui-model").click()  # version 2 has no model files: a readable error
    run(at)
    assert any("could not be loaded" in e.value for e in at.error), [e.value for e in at.error]
    assert not at.exception

    at.selectbox(key="ver-ui-model").set_value(real_version)
    run(at)
    assert at.selectbox(key="backend-ui-model").options == ["torch"]  # nothing exported yet
    at.button(key="deploy-ui-model").click()
    run(at)
    assert f"`models:/ui-model/{real_version}` is served (32 dimensions, torch)" in texts(at)
    assert f"models:/ui-model/{real_version}" in list(at.dataframe[0].value["id"])
    assert at.button(key="deploy-ui-model").disabled  # already serving the selected version

    # an export stored with the version becomes a backend to deploy it with
    from counterpoint.workers.export import export_registered

    uri = f"models:/ui-model/{real_version}"
    export_registered(uri, "onnx", tracking_uri=ui_env.mlflow_url, cache_dir=tmp_path / "cache", sample=50)
    at = open_page("models")
    at.selectbox(key="ver-ui-model").set_value(real_version)
    run(at)
    assert at.selectbox(key="backend-ui-model").options == ["torch", "onnx"]
    at.selectbox(key="backend-ui-model").set_value("onnx")
    run(at)
    assert not at.button(key="deploy-ui-model").disabled  # served with torch, not yet with onnx
    at.button(key="deploy-ui-model").click()
    run(at)
    assert f"`{uri}?backend=onnx` is served (32 dimensions, onnx)" in texts(at)
    served = at.dataframe[0].value
    assert list(served[served["id"] == f"{uri}?backend=onnx"]["backend"]) == ["onnx"]


# --- playground ----------------------------------------------------------------------------


def test_playground_similarity_heatmap(open_page: Open) -> None:
    at = open_page("playground")
    charts = at.get("vega_lite_chart")
    assert charts, "no heatmap"
    spec = json.loads(charts[0].proto.spec)
    assert "cosine similarity" in json.dumps(spec)
    assert "384 dims" in texts(at) and "most similar pair: 4 and 5" in texts(at)
    at.text_area(key="pg_sentences").set_value("only one sentence")
    run(at)
    assert "at least two sentences" in texts(at)


def test_playground_generation(open_page: Open, ui_env: UIStack) -> None:
    at = open_page("playground")
    if not any(m.kind == "causal-lm" for m in ui_env.client().models()):
        assert at.button(key="pg_generate").disabled
        assert "serves no causal LM" in texts(at)
        return
    at.slider(key="pg_max_tokens").set_value(8)
    at.button(key="pg_generate").click()
    run(at)
    assert not at.error, [e.value for e in at.error]
    summary = [c.value for c in at.caption if c.value.startswith("greedy · finish:")]
    assert summary and "tokens in" in summary[0] and "rep-2" in summary[0], [c.value for c in at.caption]
    assert "coherence" in summary[0], summary[0]  # the continuation embedded through the SDK
