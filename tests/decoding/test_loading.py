"""Loading a causal LM registered in MLflow (a local SQLite store): alias, version, layouts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from counterpoint.decoding import generate, load_causal_lm
from counterpoint.decoding.loading import find_causal_lm_dir
from counterpoint.errors import NotFound
from counterpoint.services.decode.backends import LocalDecoder, served_model_name
from counterpoint.settings import Settings
from tests.decoding.tiny_lm import tiny_llama

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def _greedy(model: Any, tokenizer: Any, prompt: list[int]) -> list[int]:
    return list(generate(model, tokenizer, prompt, max_new_tokens=8, stop_on_eos=False))


def _register(tracking_uri: str, source: Path, name: str) -> str:
    """Log ``source`` as a run's ``model`` artifacts and register it as a new version of ``name``."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("lm") or None
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("lm", artifact_location=(source.parent / "artifacts").as_uri())
    )
    run = client.create_run(experiment_id)
    client.log_artifacts(run.info.run_id, str(source), artifact_path="model")
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return str(version.version)


@pytest.fixture(autouse=True)
def _no_tracking_uri_left_behind() -> Iterator[None]:
    """Loading sets MLflow's process-wide tracking URI (as the embedding loader does): reset it."""
    import mlflow

    yield
    mlflow.set_tracking_uri(None)


@pytest.fixture()
def registry(tmp_path: Path, tokenizer: Any) -> tuple[str, Path]:
    """A tracking store with ``tiny-lm`` v1 (seed 0, plain directory) at alias ``champion`` and
    v2 (seed 1, MLflow transformers-flavor layout: ``model/`` + ``components/tokenizer/``)."""
    from mlflow import MlflowClient

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    plain = tmp_path / "plain"
    tiny_llama(tokenizer.vocab_size, seed=0).save_pretrained(plain)
    tokenizer.save_pretrained(plain)
    flavor = tmp_path / "flavor"
    tiny_llama(tokenizer.vocab_size, seed=1).save_pretrained(flavor / "model")
    tokenizer.save_pretrained(flavor / "components" / "tokenizer")
    assert _register(tracking, plain, "tiny-lm") == "1"
    assert _register(tracking, flavor, "tiny-lm") == "2"
    MlflowClient(tracking).set_registered_model_alias("tiny-lm", "champion", "1")
    return tracking, tmp_path / "cache"


def _load_registered(ref: str, cache: Path, tracking: str) -> tuple[Any, Any]:
    from counterpoint.infra.tracking import fetch_causal_lm

    return load_causal_lm(fetch_causal_lm(ref, tracking, cache))


def test_registered_model_follows_its_alias(registry: tuple[str, Path], tokenizer: Any, prompts) -> None:
    from mlflow import MlflowClient

    tracking, cache = registry
    want_v1 = _greedy(tiny_llama(tokenizer.vocab_size, seed=0), tokenizer, prompts[0])
    want_v2 = _greedy(tiny_llama(tokenizer.vocab_size, seed=1), tokenizer, prompts[0])
    assert want_v1 != want_v2

    model, tok = _load_registered("models:/tiny-lm@champion", cache, tracking)
    assert not model.training and model.dtype == torch.float32
    assert _greedy(model, tok, prompts[0]) == want_v1
    assert len(list(cache.iterdir())) == 1

    MlflowClient(tracking).set_registered_model_alias("tiny-lm", "champion", "2")
    model, tok = _load_registered("models:/tiny-lm@champion", cache, tracking)
    assert _greedy(model, tok, prompts[0]) == want_v2, "a moved alias must not serve the cached v1"
    again, _ = _load_registered("models:/tiny-lm/2", cache, tracking)  # the cached copy
    assert len(list(cache.iterdir())) == 2 and torch.equal(again.lm_head.weight, model.lm_head.weight)


def test_missing_registered_model_is_not_found(registry: tuple[str, Path]) -> None:
    tracking, cache = registry
    with pytest.raises(NotFound, match="staging"):
        _load_registered("models:/tiny-lm@staging", cache, tracking)
    with pytest.raises(NotFound, match="ghost"):
        _load_registered("models:/ghost/1", cache, tracking)
    with pytest.raises(ValueError, match="fetch_causal_lm"):  # the library never talks to MLflow itself
        load_causal_lm("models:/tiny-lm/1")


def test_find_causal_lm_dir_layouts(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    with pytest.raises(NotFound, match="tokenizer"):
        find_causal_lm_dir(tmp_path)
    (tmp_path / "components" / "tokenizer").mkdir(parents=True)
    (tmp_path / "components" / "tokenizer" / "tokenizer_config.json").write_text("{}")
    assert find_causal_lm_dir(tmp_path) == (tmp_path / "model", tmp_path / "components" / "tokenizer")
    (tmp_path / "model" / "tokenizer.json").write_text("{}")
    assert find_causal_lm_dir(tmp_path) == (tmp_path / "model", tmp_path / "model")
    shutil.rmtree(tmp_path / "model")
    with pytest.raises(NotFound, match="config.json"):
        find_causal_lm_dir(tmp_path)


def test_decoder_serves_a_registered_model(
    registry: tuple[str, Path], tokenizer: Any, tmp_path: Path
) -> None:
    """What the decode deployment does with COUNTERPOINT_DECODE_MODEL=models:/NAME@ALIAS."""
    tracking, _ = registry
    ref = "models:/tiny-lm@champion"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        mlflow_tracking_uri=tracking,
        decode_model=ref,
    )
    decoder = LocalDecoder.from_settings(settings)
    assert decoder.name == served_model_name(ref) == ref
    assert decoder.context_length == 256
    assert any((settings.models_dir / "registry").iterdir()), "downloaded under <data_dir>/models/registry"
