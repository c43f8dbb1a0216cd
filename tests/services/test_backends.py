"""Inference backends (#21): exported graphs embed like torch, the export is checked and kept with the
registered version in MLflow, and the gateway serves it by name (``MODEL?backend=...``).

Real ONNX Runtime, OpenVINO and NNCF on a tiny random bi-encoder; a real MLflow store (the
``tracking`` fixture); the real gateway app with an in-process embedder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from counterpoint.errors import InvalidInput
from counterpoint.infra.tracking import client
from counterpoint.models import export
from counterpoint.models.embedder import TextEmbedder
from counterpoint.models.export import (
    MANIFEST,
    ensure_exported,
    int8_accelerated,
    split_backend,
    with_backend,
)
from counterpoint.models.reranker import TextReranker
from counterpoint.services.embed.backends import (
    LocalEmbedder,
    default_embedder,
    export_default_embedder,
    registry_loader,
)
from counterpoint.services.gateway.app import create_app
from counterpoint.services.gateway.models import ModelRegistryService
from counterpoint.services.model_loading import default_embed_backend
from counterpoint.settings import Settings
from counterpoint.workers.export import export_registered
from tests.services.conftest import MODEL
from tests.services.in_process import in_process_core
from tests.settings_factory import unit_settings

TEXTS = [
    "contrastive learning of sentence embeddings",
    "a lighthouse keeper tends the lamp every night of the year",
    "bread",
    "vitamin D and bone density in older adults, a randomised trial " * 4,
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)  # both unit length


@pytest.mark.parametrize(
    ("backend", "closeness"),
    [("onnx", 0.9999), ("openvino", 0.9999), ("onnx-int8", 0.97), ("openvino-int8", 0.97)],
)
def test_every_backend_embeds_like_torch(
    backend: str, closeness: float, tiny_model_path: Path, tmp_path: Path
) -> None:
    torch_model = TextEmbedder(str(tiny_model_path), max_seq_length=64)
    exported = TextEmbedder(
        str(tiny_model_path), max_seq_length=64, backend=backend, export_dir=tmp_path / backend
    )  # type: ignore[arg-type]
    reference, got = torch_model.embed(TEXTS), exported.embed(TEXTS)
    assert got.vectors.shape == reference.vectors.shape and got.vectors.dtype == np.float32
    assert got.token_counts == reference.token_counts
    assert np.allclose(np.linalg.norm(got.vectors, axis=1), 1.0, atol=1e-5)
    assert cosines(got.vectors, reference.vectors).min() >= closeness
    assert json.loads((tmp_path / backend / MANIFEST).read_text())["backend"] == backend
    assert {p.device.type for p in exported.model[0].auto_model.parameters()} == {
        "meta"
    }  # freed: the graph has them
    # the export is made once: a second replica on the same directory reuses the files
    stamp = (tmp_path / backend / MANIFEST).stat().st_mtime_ns
    again = TextEmbedder(
        str(tiny_model_path), max_seq_length=64, backend=backend, export_dir=tmp_path / backend
    )  # type: ignore[arg-type]
    assert (tmp_path / backend / MANIFEST).stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.embed(TEXTS).vectors, got.vectors, atol=1e-6)


@pytest.mark.parametrize(
    ("backend", "atol"), [("onnx", 2e-6), ("openvino", 2e-6), ("onnx-int8", 0.02), ("openvino-int8", 0.02)]
)
def test_every_backend_reranks_like_torch(
    backend: str, atol: float, tiny_reranker: TextReranker, tmp_path: Path
) -> None:
    """A cross-encoder's graph returns logits; the model's own activation turns them into scores. (A
    random tiny model scores every pair within ~1e-3 of the others, hence the fp32 tolerance.)"""
    path = tiny_reranker.model.model.name_or_path
    exported = TextReranker(path, max_length=64, backend=backend, export_dir=tmp_path / backend)  # type: ignore[arg-type]
    calls = [("lighthouse keeper", TEXTS), ("bread", TEXTS[:2])]
    for want, got in zip(tiny_reranker.score_many(calls), exported.score_many(calls), strict=True):
        np.testing.assert_allclose(got.scores, want.scores, atol=atol)
        if "int8" not in backend:
            assert list(np.argsort(got.scores)) == list(np.argsort(want.scores))
        assert got.token_counts == want.token_counts and got.truncated == want.truncated
    assert (
        exported.backend == backend
        and json.loads((tmp_path / backend / MANIFEST).read_text())["output"] == "logits"
    )


def test_int8_files_are_smaller_than_fp32(tiny_model_path: Path, tmp_path: Path) -> None:
    model = TextEmbedder(str(tiny_model_path)).model
    sizes = {}
    for backend in ("onnx", "onnx-int8"):
        directory = ensure_exported(model[0].auto_model, model.tokenizer, backend, tmp_path / backend)  # type: ignore[arg-type]
        sizes[backend] = sum(f.stat().st_size for f in directory.iterdir())
    assert sizes["onnx-int8"] < 0.6 * sizes["onnx"]


def test_an_interrupted_export_leaves_nothing_that_looks_done(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime.quantization

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", crash)
    with pytest.raises(KeyboardInterrupt):
        TextEmbedder(str(tiny_model_path), backend="onnx-int8", export_dir=tmp_path / "onnx-int8")
    assert list(tmp_path.iterdir()) == []  # neither the directory nor a partial copy


def test_a_model_name_carries_its_backend() -> None:
    assert split_backend("models:/m/3") == ("models:/m/3", "torch")
    assert split_backend("models:/m/3?backend=onnx-int8") == ("models:/m/3", "onnx-int8")
    assert with_backend("models:/m/3", "openvino") == "models:/m/3?backend=openvino"
    assert with_backend("models:/m/3?backend=openvino", "torch") == "models:/m/3"
    assert with_backend("models:/m/3?backend=openvino", None) == "models:/m/3?backend=openvino"
    for bad, words in (
        ("m?backend=tensorrt", "unknown backend 'tensorrt'"),
        ("m?device=gpu", "?backend=NAME"),
    ):
        with pytest.raises(InvalidInput, match=words.replace("?", r"\?")):
            split_backend(bad)


def test_the_default_model_runs_with_the_configured_backend(tiny_model_path: Path, tmp_path: Path) -> None:
    settings = unit_settings(
        tmp_path, embed_model="tiny", embed_model_path=str(tiny_model_path), embed_backend="onnx"
    )
    name, embedder = default_embedder(settings)
    assert name == "tiny?backend=onnx" and embedder.backend == "onnx"
    assert (next((settings.models_dir / "exported").iterdir()) / "onnx" / MANIFEST).is_file()
    pool = LocalEmbedder(name, embedder, loader=registry_loader(settings)).pool
    assert pool.get("tiny") == (name, embedder)  # the plain name: the default as served, no second copy
    served, plain = pool.get("tiny?backend=torch")  # the same weights in torch: loaded on first use
    assert served == "tiny?backend=torch" and plain.backend == "torch" and len(pool.names) == 2
    assert cosines(plain.embed(TEXTS).vectors, embedder.embed(TEXTS).vectors).min() > 0.9999
    with (
        in_process_core(settings, LocalEmbedder(name, embedder)) as core,
        TestClient(create_app(core), raise_server_exceptions=False) as api,
    ):
        assert api.get("/v1/models/tiny").json()["id"] == name  # OpenAI's models.retrieve, plain name
        reply = api.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "tiny"})
        assert reply.json()["model"] == name
        assert api.get("/v1/models/other").status_code == 404


def test_int8_only_where_the_cpu_multiplies_int8(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse2 avx avx2 fma\n")
    assert not int8_accelerated(cpuinfo)
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        cpuinfo.write_text(f"processor : 0\nflags : fpu avx2 avx512f {flag}\n")
        assert int8_accelerated(cpuinfo)
    assert not int8_accelerated(tmp_path / "no-such-file")  # not Linux: no int8 claim


def test_auto_runs_only_the_packaged_model_exported(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = Settings(data_dir=tmp_path, embed_backend="auto")  # all-MiniLM-L6-v2, measured
    for vnni, expected in ((True, "openvino-int8"), (False, "openvino")):
        monkeypatch.setattr(export, "int8_accelerated", lambda vnni=vnni: vnni)
        assert default_embed_backend(packaged) == expected
    own = unit_settings(tmp_path, embed_backend="auto", embed_model_path=str(tiny_model_path))
    assert default_embed_backend(own) == "torch"  # a user's model is never quantized unasked
    assert default_embed_backend(packaged.model_copy(update={"embed_backend": "onnx"})) == "onnx"


def test_the_launcher_exports_the_default_model_once_before_the_replicas_start(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    settings = unit_settings(
        tmp_path,
        embed_model="tiny",
        embed_model_path=str(tiny_model_path),
        embed_backend="onnx",
        export_cache_dir=tmp_path / "exports",
    )
    assert export_default_embedder(settings) is True  # in a child process
    (exported,) = (tmp_path / "exports").iterdir()
    assert json.loads((exported / "onnx" / MANIFEST).read_text())["backend"] == "onnx"
    assert export_default_embedder(settings) is False  # already there: nothing runs
    broken = settings.model_copy(
        update={"embed_model_path": str(tmp_path / "empty"), "embed_backend": "openvino"}
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="COUNTERPOINT_EMBED_BACKEND=torch"):
        export_default_embedder(broken)


@pytest.fixture()
def api(tmp_path: Path, tracking: dict[str, object], tiny_embedder: TextEmbedder) -> Iterator[TestClient]:
    settings = unit_settings(tmp_path, mlflow_tracking_uri=str(tracking["uri"]), model_alias_ttl_s=0)
    embedder = LocalEmbedder("tiny", tiny_embedder, loader=registry_loader(settings))
    with (
        in_process_core(settings, embedder) as core,
        TestClient(
            create_app(core, registry=ModelRegistryService(settings)), raise_server_exceptions=False
        ) as api,
    ):
        yield api


def test_an_export_is_checked_stored_with_its_version_and_served_by_name(
    api: TestClient, tracking: dict[str, object], tmp_path: Path
) -> None:
    uri = str(tracking["uri"])
    never = api.post("/v1/models", json={"model": f"models:/{MODEL}@champion", "backend": "openvino"})
    assert never.status_code == 404 and "was never exported" in never.json()["error"]["message"], never.text

    report = export_registered(
        f"models:/{MODEL}@champion", "onnx", tracking_uri=uri, cache_dir=tmp_path / "c", sample=200
    )
    assert report.model == f"models:/{MODEL}/1" and report.servable
    assert abs(report.loss) < 0.05  # fp32: the same numbers up to rounding
    version = client(uri).get_model_version(MODEL, "1")
    assert version.tags["counterpoint.export.onnx"] == "servable"
    metrics = client(uri).get_run(version.run_id).data.metrics
    assert metrics["export/onnx/sts_dev_spearman"] == pytest.approx(report.exported)
    assert metrics["export/torch/sts_dev_spearman"] == pytest.approx(report.torch)
    stored = [a.path for a in client(uri).list_artifacts(version.run_id, "backends/onnx")]
    assert {"backends/onnx/model.onnx", "backends/onnx/export.json"} <= set(stored)

    loaded = api.post("/v1/models", json={"model": f"models:/{MODEL}@champion", "backend": "onnx"})
    assert loaded.status_code == 200, loaded.text
    card = loaded.json()
    assert (
        card["id"] == f"models:/{MODEL}/1?backend=onnx"
        and card["backend"] == "onnx"
        and card["dimensions"] == 32
    )
    reply = api.post(
        "/v1/embeddings", json={"input": TEXTS, "model": f"models:/{MODEL}@champion?backend=onnx"}
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == f"models:/{MODEL}/1?backend=onnx"
    got = np.array([d["embedding"] for d in reply.json()["data"]], dtype=np.float32)
    expected = TextEmbedder(str(tracking["paths"][1])).embed(TEXTS).vectors  # type: ignore[index]
    assert cosines(got, expected).min() > 0.9999
    listed = {c["id"]: c["backend"] for c in api.get("/v1/models").json()["data"]}
    assert listed[f"models:/{MODEL}/1?backend=onnx"] == "onnx" and listed["tiny"] == "torch"
    one = api.get(f"/v1/models/models:/{MODEL}/1", params={"backend": "onnx"})
    assert one.status_code == 200 and one.json()["backend"] == "onnx", one.text

    collection = api.post(
        "/v1/collections", json={"name": "fast", "model": f"models:/{MODEL}@champion?backend=onnx"}
    )
    assert collection.status_code in (200, 201), collection.text
    assert collection.json()["model"] == f"models:/{MODEL}/1?backend=onnx"


def test_an_export_that_loses_too_much_is_not_servable(
    api: TestClient, tracking: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken int8 graph (its output scrambled) fails the check: logged, tagged, not stored, refused."""
    from counterpoint.models.export import GraphRunner

    run_graph = GraphRunner.__call__
    noise = np.random.default_rng(0)

    def scrambled(self: GraphRunner, features: dict) -> np.ndarray:
        out = run_graph(self, features)
        return out + noise.normal(scale=3 * out.std(), size=out.shape).astype(out.dtype)

    monkeypatch.setattr(GraphRunner, "__call__", scrambled)
    uri = str(tracking["uri"])
    report = export_registered(
        f"models:/{MODEL}/2",
        "onnx-int8",
        tracking_uri=uri,
        cache_dir=tmp_path / "c",
        sample=200,
        tolerance=1.0,
    )
    assert not report.servable and report.loss > 1.0
    assert "rejected" in report.message and "tolerance of 1" in report.message
    version = client(uri).get_model_version(MODEL, "2")
    assert version.tags["counterpoint.export.onnx-int8"].startswith("rejected: it loses")
    assert client(uri).list_artifacts(version.run_id, "backends/onnx-int8") == []
    assert client(uri).get_run(version.run_id).data.metrics["export/onnx-int8/loss"] == pytest.approx(
        report.loss
    )
    refused = api.post("/v1/models", json={"model": f"models:/{MODEL}/2", "backend": "onnx-int8"})
    assert refused.status_code == 404, refused.text
    assert "not registered as servable (rejected: it loses" in refused.json()["error"]["message"]


def test_bad_backend_names_are_clear_4xx(api: TestClient) -> None:
    bad = api.post("/v1/models", json={"model": f"models:/{MODEL}/1", "backend": "tensorrt"})
    assert bad.status_code == 422 and "backend" in bad.text, bad.text
    for name in (f"models:/{MODEL}/1?backend=tensorrt", "tiny?backend=tensorrt", "tiny?device=gpu"):
        reply = api.post("/v1/embeddings", json={"input": ["a"], "model": name})
        assert reply.status_code == 422, reply.text
        assert "backend" in reply.json()["error"]["message"]
    assert api.post("/v1/collections", json={"name": "x", "model": "tiny?backend=fp4"}).status_code == 422


def test_cli_exports_and_reports_a_bad_backend(
    tracking: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from counterpoint import cli
    from counterpoint.settings import get_settings

    monkeypatch.setenv("COUNTERPOINT_MLFLOW_TRACKING_URI", str(tracking["uri"]))
    monkeypatch.setenv("COUNTERPOINT_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(
            cli.app, ["models", "export", f"models:/{MODEL}/1", "--backend", "openvino", "--sample", "100"]
        )
        assert done.exit_code == 0, done.output
        assert "as openvino: STS-B dev Spearman" in done.stdout and "servable" in done.stdout
        assert f"counterpoint models deploy models:/{MODEL}/1 --backend openvino" in done.stdout
        bad = CliRunner().invoke(cli.app, ["models", "export", f"models:/{MODEL}/1", "--backend", "fp4"])
        assert bad.exit_code == 2 and "fp4" in bad.output
    finally:
        get_settings.cache_clear()


def test_a_reranker_export_is_checked_on_scifact_dev_and_served_by_the_rerank_service(
    tracking: dict[str, object], tiny_embedder: TextEmbedder, tiny_reranker: TextReranker, tmp_path: Path
) -> None:
    import mlflow

    from counterpoint.infra.tracking import get_or_create_experiment, log_model_directory, register_model
    from counterpoint.services.rerank.backends import LocalReranker, reranker_loader

    uri = str(tracking["uri"])
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(experiment_id=get_or_create_experiment("reranker-exports-test", uri)):
        model_uri = log_model_directory(tiny_reranker.model, name="model")
    version = register_model(model_uri, "tiny-rr", uri)

    report = export_registered(
        f"models:/tiny-rr/{version}", "onnx", tracking_uri=uri, cache_dir=tmp_path / "c", sample=4
    )
    assert report.metric.startswith("SciFact dev nDCG@10") and report.servable and abs(report.loss) < 0.01
    run_id = client(uri).get_model_version("tiny-rr", version).run_id
    assert "export/onnx/scifact_dev_ndcg_at_10" in client(uri).get_run(run_id).data.metrics

    settings = unit_settings(tmp_path, mlflow_tracking_uri=uri, rerank_max_length=64)
    reranker = LocalReranker("tiny-ce", tiny_reranker, loader=reranker_loader(settings))
    with (
        in_process_core(settings, LocalEmbedder("tiny", tiny_embedder), reranker) as core,
        TestClient(create_app(core), raise_server_exceptions=False) as api,
    ):
        loaded = api.post(
            "/v1/models", json={"model": f"models:/tiny-rr/{version}", "kind": "reranker", "backend": "onnx"}
        )
        assert loaded.status_code == 200, loaded.text
        assert (
            loaded.json()["id"] == f"models:/tiny-rr/{version}?backend=onnx"
            and loaded.json()["backend"] == "onnx"
        )
        body = {
            "query": "lighthouse keeper",
            "documents": TEXTS,
            "model": f"models:/tiny-rr/{version}?backend=onnx",
        }
        reply = api.post("/v1/rerank", json=body)
        assert reply.status_code == 200, reply.text
        got = {r["index"]: r["relevance_score"] for r in reply.json()["results"]}
        want = tiny_reranker.score("lighthouse keeper", TEXTS).scores
        assert [got[i] for i in range(len(TEXTS))] == pytest.approx(want.tolist(), abs=2e-6)
        missing = api.post(
            "/v1/models",
            json={"model": f"models:/tiny-rr/{version}", "kind": "reranker", "backend": "openvino-int8"},
        )
        assert missing.status_code == 404 and "was never exported" in missing.text
