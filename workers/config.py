"""The training-job configuration: one YAML/JSON document, validated before anything runs.

A config names the base model, the loss, the data and the schedule. Validation checks
values *and* the data (the file exists, the columns the loss needs are there), so a
mistake is reported with its field name at submit time, not minutes into a Ray job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from counterpoint.errors import InvalidInput
from counterpoint.schemas import RetrievalMode
from counterpoint.settings import DEFAULT_EXPORT_TOLERANCE
from counterpoint.workers.data import DataSource, Kind, check_source

ExportBackend = Literal["onnx", "onnx-int8", "openvino", "openvino-int8"]
LossName = Literal["mnrl", "simcse", "simcse_supervised", "debiased", "cosent", "bce", "listwise"]
ModelType = Literal["bi-encoder", "cross-encoder"]
CROSS_ENCODER_LOSSES = ("bce", "listwise")

# Which example types each loss can train on.
LOSS_KINDS: dict[str, tuple[Kind, ...]] = {
    "mnrl": ("pairs", "triplets"),
    "simcse": ("sentences", "pairs"),
    "simcse_supervised": ("triplets",),
    "debiased": ("pairs", "triplets"),
    "cosent": ("scored_pairs",),
    "bce": ("triplets",),
    "listwise": ("triplets",),
}


class LossConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LossName = "mnrl"
    scale: float = Field(20.0, gt=0, description="1/temperature of the similarity logits.")
    learnable_temperature: bool = False
    symmetric: bool = False
    tau_plus: float = Field(0.1, ge=0, lt=1, description="Class prior of the debiased loss.")
    false_negative_margin: float | None = Field(
        None, ge=0, description="Mask in-batch negatives scoring above positive - margin (GTE/GISTEmbed)."
    )
    matryoshka_dims: list[int] = Field(default_factory=list, description="Also train truncated dimensions.")
    in_batch_negatives: bool = Field(
        True, description="listwise (cross-encoder): other queries' documents join each query's group."
    )


class RetrievalEval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="BEIR directory (corpus.jsonl, queries.jsonl, qrels/).")
    split: str = "test"
    max_docs: int | None = Field(None, ge=1, description="Evaluate on a corpus sample (judged docs kept).")
    modes: list[RetrievalMode] = Field(
        default_factory=lambda: ["dense"],
        min_length=1,
        description="Search modes scored: 'dense' (eval/ndcg_at_10, ...), 'lexical' and 'hybrid' "
        "(BM25 + dense fused by DBSF in the platform's own store: eval/hybrid_ndcg_at_10, ...).",
    )


class RerankEval(BaseModel):
    """Rerank a first stage's top ``top_k`` of a BEIR split (cross-encoder jobs)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="BEIR directory (corpus.jsonl, queries.jsonl, qrels/).")
    split: str = "test"
    retriever: str = Field("all-MiniLM-L6-v2", description="First-stage bi-encoder (packaged name or dir).")
    mode: RetrievalMode = Field(
        "dense",
        description="First stage: 'dense' (exact search), 'lexical' (BM25) or 'hybrid' (BM25 + dense, DBSF), "
        "as a collection search with that mode answers.",
    )
    top_k: int = Field(100, ge=1, le=1000, description="First-stage candidates reranked per query.")
    max_docs: int | None = Field(None, ge=1, description="Search a corpus sample (judged docs kept).")
    max_queries: int | None = Field(None, ge=1, description="Evaluate on the first N queries only.")
    fusion_weights: list[float] = Field(
        default_factory=list,
        description="Also score first-stage/reranker score fusion at these first-stage weights in [0, 1] "
        "(eval/fused_w{w}_*; see counterpoint.fusion). Choose the weight on a dev split.",
    )

    @model_validator(mode="after")
    def _weights_in_range(self) -> RerankEval:
        if any(not 0.0 <= w <= 1.0 for w in self.fusion_weights):
            raise ValueError(f"fusion_weights must lie in [0, 1], got {self.fusion_weights}")
        return self


class ExportConfig(BaseModel):
    """Exported backends stored with the registered version once the job registers it."""

    model_config = ConfigDict(extra="forbid")

    backends: list[ExportBackend] = Field(
        min_length=1, description="onnx, onnx-int8, openvino, openvino-int8 (see counterpoint models export)."
    )
    tolerance: float = Field(
        DEFAULT_EXPORT_TOLERANCE,
        ge=0,
        description="Points of STS-B dev Spearman an export may lose vs torch.",
    )
    sample: int | None = Field(None, ge=2, description="Score on the first N STS-B dev pairs only.")


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sts: str | None = Field(None, description="Scored-pair TSV for Spearman correlation.")
    retrieval: RetrievalEval | None = None
    rerank: RerankEval | None = None
    every_steps: int = Field(100, ge=1)
    at_start: bool = Field(True, description="Also evaluate the base model at step 0 (where curves start).")
    uniformity_sample: int = Field(512, ge=16, description="Sentences used for alignment/uniformity.")


class TrainConfig(BaseModel):
    """Everything a fine-tuning job needs; see examples/*.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("finetune", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$")
    model: str = Field("all-MiniLM-L6-v2", description="Base model: packaged name or local directory.")
    model_type: ModelType = Field(
        "bi-encoder", description="bi-encoder (embeddings) or cross-encoder (a reranker, fresh head)."
    )
    loss: LossConfig = Field(default_factory=LossConfig)
    data: DataSource
    eval: EvalConfig = Field(default_factory=EvalConfig)
    batch_size: int = Field(32, ge=2)
    gradcache_chunk: int | None = Field(None, ge=1, description="GradCache chunk size (large batches).")
    lr: float = Field(2e-5, gt=0, le=1)
    head_lr: float | None = Field(
        None,
        gt=0,
        le=1,
        description="cross-encoder: learning rate of the classification head (default: lr). A fresh "
        "head at a transformer's lr needs hundreds of steps before its logits differ by more than 0.01.",
    )
    epochs: int = Field(1, ge=1)
    max_steps: int | None = Field(None, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_seq_length: int = Field(128, ge=8, le=8192)
    attention_dropout: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Dropout on attention probabilities while training (None: the checkpoint's, 0.1 for "
        "MiniLM). 0 made a CPU step ~2.5x faster at 320 tokens with torch's dropout (less with fast_dropout: "
        "the scores are still materialised); hidden dropout stays.",
    )
    fast_dropout: bool = Field(
        True,
        description="On CPU, draw dropout masks in bulk (workers/fast_dropout.py): the same Bernoulli "
        "masks and recipe, ~13 % faster steps. false: torch's own dropout kernels.",
    )
    workers: int = Field(1, ge=1)
    cross_worker_negatives: bool = True
    seed: int = 42
    report_every: int = Field(20, ge=1, description="Steps between Ray reports / MLflow metrics.")
    checkpoint_every: int = Field(200, ge=1)
    max_failures: int = Field(
        2,
        ge=0,
        le=100,
        description="Times Ray Train restarts the workers from the last checkpoint after a worker or "
        "node dies (or a step raises) before the job fails.",
    )
    experiment: str = "counterpoint"
    register_as: str | None = Field(None, description="Register the result under this MLflow model name.")
    export: ExportConfig | None = Field(
        None, description="Export the registered version to these backends, checked against torch."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.gradcache_chunk is not None and self.gradcache_chunk > self.batch_size:
            raise ValueError("gradcache_chunk must not exceed batch_size")
        cross = self.model_type == "cross-encoder"
        if cross != (self.loss.name in CROSS_ENCODER_LOSSES):
            raise ValueError(
                "a cross-encoder trains with loss bce or listwise, a bi-encoder with the embedding losses; "
                f"got model_type={self.model_type} and loss.name={self.loss.name}"
            )
        if self.head_lr is not None and not cross:
            raise ValueError("head_lr applies to cross-encoders (their classification head)")
        if cross and (
            self.gradcache_chunk or self.loss.matryoshka_dims or self.eval.sts or self.eval.retrieval
        ):
            raise ValueError(
                "gradcache, matryoshka, eval.sts and eval.retrieval apply to bi-encoders; use eval.rerank"
            )
        if not cross and self.eval.rerank:
            raise ValueError("eval.rerank evaluates cross-encoders; a bi-encoder uses eval.retrieval")
        if self.export is not None and (cross or not self.register_as):
            raise ValueError(
                "export needs register_as and a bi-encoder (exports belong to a registered version)"
            )
        return self


def parse_config(raw: str | bytes | dict[str, Any], *, check_data: bool = True) -> TrainConfig:
    """Parse and validate a config (YAML/JSON text or a dict); errors name the field."""
    if isinstance(raw, str | bytes):
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"config is not valid YAML/JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("config must be a mapping of fields")
    try:
        config = TrainConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"config field '{field}': {first['msg']}") from None
    if check_data:
        kind = check_source(config.data)
        allowed = LOSS_KINDS[config.loss.name]
        if kind not in allowed:
            raise InvalidInput(
                f"config field 'loss.name': {config.loss.name} trains on {' or '.join(allowed)}, "
                f"but data.path holds {kind}"
            )
        if config.eval.sts:
            check_source(DataSource(path=config.eval.sts, kind="scored_pairs"))
        if config.eval.rerank and not (Path(config.eval.rerank.path) / "qrels").is_dir():
            raise InvalidInput(f"config field 'eval.rerank.path': '{config.eval.rerank.path}' is not BEIR")
        if config.eval.retrieval and not (Path(config.eval.retrieval.path) / "qrels").is_dir():
            raise InvalidInput(
                f"config field 'eval.retrieval.path': '{config.eval.retrieval.path}' is not BEIR"
            )
    return config


def load_config(path: str | Path, **kwargs: Any) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no such config file: {path}")
    return parse_config(path.read_text(), **kwargs)


def dump_config(config: TrainConfig) -> str:
    return json.dumps(config.model_dump(mode="json"), indent=2)
