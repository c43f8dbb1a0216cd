"""Open-ended generation quality of the served causal LM, per decoding method, through the gateway.

Each prompt of a set (default: the shipped ``counterpoint/decoding/prompts.jsonl``) is sent
through the platform's generation API with each method, and the continuations are scored
with Su et al. (2022)'s measures (:mod:`counterpoint.decoding.metrics`): rep-2/3/4 and
diversity over whitespace tokens, and coherence, the cosine between the prompt's and the
continuation's embeddings from the platform's own embedding endpoint (an empty
continuation counts as coherence 0). Results can be logged to MLflow (experiment
``generation-eval``): one parent run with the table as an artifact and one child run per
method holding its parameters and metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from counterpoint.decoding.metrics import GenerationMetrics, summarize
from counterpoint.errors import InvalidInput
from counterpoint.jsonl import iter_jsonl

EXPERIMENT = "generation-eval"
METHOD_PARAMS: dict[str, dict[str, Any]] = {
    "greedy": {"decoding": "greedy"},
    "sampling": {"decoding": "sampling", "temperature": 1.0, "top_p": 0.95, "seed": 0},
    "contrastive_search": {"decoding": "contrastive_search", "top_k": 4, "penalty_alpha": 0.6},
    "contrastive_decoding": {"decoding": "contrastive_decoding", "cd_alpha": 0.1, "amateur_temperature": 1.0},
}
METRIC_COLUMNS = ("rep_2", "rep_3", "rep_4", "diversity", "coherence", "mean_tokens")
EMBED_BATCH = 64


def read_prompts(path: str | Path | None = None) -> list[dict[str, str]]:
    """``{"id", "prompt"}`` objects, one a line (default: the shipped prompt set), without torch.

    A prompt without an ``id`` is numbered by its place in the file (1, 2, ...).
    """
    if path is None:
        text = resources.files("counterpoint.decoding").joinpath("prompts.jsonl").read_text(encoding="utf-8")
        items = iter_jsonl(text.splitlines(), "prompts.jsonl")
    elif not Path(path).is_file():
        raise InvalidInput(f"no such file: {path}")
    else:
        items = iter_jsonl(path)
    prompts = []
    for number, item in enumerate(items, start=1):
        if not str(item.get("prompt", "")).strip():
            raise InvalidInput(f"{path or 'prompts.jsonl'}: prompt {number} needs a non-empty 'prompt'")
        prompts.append({"id": str(item.get("id", number)), "prompt": str(item["prompt"])})
    if not prompts:
        raise InvalidInput(f"{path} holds no prompts")
    return prompts


@dataclass
class MethodResult:
    """One method over the prompt set: its parameters, the scores and the continuations."""

    method: str
    params: dict[str, Any]
    metrics: GenerationMetrics
    seconds: float
    completion_tokens: int
    continuations: list[str] = field(default_factory=list)
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "method": self.method,
            **self.metrics.as_dict(),
            "tokens_per_s": self.tokens_per_second,
            "completion_tokens": self.completion_tokens,
        }


def platform_embedder(client: Any) -> Callable[[list[str]], np.ndarray]:
    """Texts -> unit vectors from the gateway's ``/v1/embeddings``; empty texts get zero vectors."""

    def embed(texts: list[str]) -> np.ndarray:
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if not keep:
            return np.zeros((len(texts), 1), dtype=np.float32)
        parts = [
            client.embed_array([texts[i] for i in keep[start : start + EMBED_BATCH]])
            for start in range(0, len(keep), EMBED_BATCH)
        ]
        vectors = np.concatenate(parts)
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        out[keep] = vectors
        return out

    return embed


def evaluate_generation(
    client: Any,
    prompts: Sequence[Mapping[str, str]],
    methods: Sequence[str],
    *,
    max_tokens: int = 64,
    chat: bool = True,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    coherence: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[MethodResult]:
    """Generate a continuation of every prompt with every method through the gateway, and score them."""
    unknown = [m for m in methods if m not in METHOD_PARAMS]
    if unknown:
        raise InvalidInput(f"unknown method(s) {unknown}; expected some of {', '.join(METHOD_PARAMS)}")
    texts = [p["prompt"] for p in prompts]
    embed = platform_embedder(client) if coherence else None
    results = []
    for method in methods:
        params = {**METHOD_PARAMS[method], **(overrides or {}).get(method, {}), "max_tokens": max_tokens}
        continuations, reasons, tokens = [], [], 0
        started = time.perf_counter()
        for text in texts:
            reply = client.chat(text, **params) if chat else client.complete(text, **params)
            continuations.append(reply.text)
            reasons.append(reply.choices[0].finish_detail)
            tokens += reply.usage.completion_tokens
            if on_progress is not None:
                on_progress(1)
        seconds = time.perf_counter() - started
        metrics = summarize(continuations, texts, embed)
        results.append(MethodResult(method, params, metrics, seconds, tokens, continuations, reasons))
    return results


def markdown_table(results: Sequence[MethodResult]) -> str:
    """The results as a Markdown table (what is logged to MLflow)."""
    header = ["method", "rep-2", "rep-3", "rep-4", "diversity", "coherence", "mean tokens", "tokens/s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        m = r.metrics
        coh = "n/a" if m.coherence is None else f"{m.coherence:.4f}"
        cells = [r.method, f"{m.rep_2:.2f}", f"{m.rep_3:.2f}", f"{m.rep_4:.2f}", f"{m.diversity:.4f}", coh,
                 f"{m.mean_tokens:.1f}", f"{r.tokens_per_second:.1f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def tracking_reachable(tracking_uri: str, timeout: float = 2.0) -> bool:
    """Whether an MLflow server answers at ``tracking_uri`` (a local store is always reachable)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return True
    import httpx

    try:
        return httpx.get(f"{tracking_uri.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def log_to_mlflow(
    tracking_uri: str,
    results: Sequence[MethodResult],
    prompts: Sequence[Mapping[str, str]],
    run_params: Mapping[str, Any],
    *,
    experiment: str = EXPERIMENT,
) -> str:
    """Log one parent run (settings, every method's metrics as ``<method>.<metric>``, the table and
    the samples as artifacts) with a child run per method; returns the parent run's id."""
    import os

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # stdout is the table (or JSON)
    from mlflow import MlflowClient

    mlflow_client = MlflowClient(tracking_uri=tracking_uri)
    found = mlflow_client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:  # a server picks the artifact store; a local SQLite store keeps it next to its database
        local = tracking_uri.startswith("sqlite:///")
        root = (
            Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts" if local else None
        )
        experiment_id = mlflow_client.create_experiment(
            experiment, artifact_location=root.as_uri() if root is not None else None
        )
    parent = mlflow_client.create_run(experiment_id, run_name="eval-generation")
    parent_id = parent.info.run_id
    try:
        for key, value in run_params.items():
            mlflow_client.log_param(parent_id, key, value)
        for result in results:
            child = mlflow_client.create_run(
                experiment_id, run_name=result.method, tags={"mlflow.parentRunId": parent_id}
            )
            child_id = child.info.run_id
            for key, value in {**run_params, **result.params, "method": result.method}.items():
                mlflow_client.log_param(child_id, key, value)
            for key, value in result.row().items():
                if isinstance(value, int | float):
                    mlflow_client.log_metric(child_id, key, float(value))
                    mlflow_client.log_metric(parent_id, f"{result.method}.{key}", float(value))
            mlflow_client.set_terminated(child_id)
        mlflow_client.log_text(parent_id, markdown_table(results), "generation_eval.md")
        mlflow_client.log_dict(parent_id, {"rows": [r.row() for r in results]}, "generation_eval.json")
        samples = [
            {"id": p["id"], "prompt": p["prompt"], "method": r.method, "continuation": c, "finish": f}
            for r in results
            for p, c, f in zip(prompts, r.continuations, r.finish_reasons, strict=True)
        ]
        mlflow_client.log_text(
            parent_id, "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples), "samples.jsonl"
        )
    except BaseException:
        mlflow_client.set_terminated(parent_id, status="FAILED")
        raise
    mlflow_client.set_terminated(parent_id)
    return parent_id
