"""Models: the served ones (``/v1/models``, OpenAI's shape), loading one, and the MLflow registry's."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from counterpoint.schemas.base import StrictModel
from counterpoint.settings import Backend


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "counterpoint"
    kind: str = "embedding"
    dimensions: int | None = None
    context_length: int | None = None
    backend: str | None = Field(
        None, description="How it runs: torch, onnx, onnx-int8, openvino, openvino-int8."
    )


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ModelLoad(StrictModel):
    """Load (deploy) a model into the embedding service, e.g. ``models:/scifact-minilm@champion``."""

    model: str = Field(min_length=1, max_length=500)
    kind: Literal["embedding", "reranker"] = Field("embedding", description="Which service loads it.")
    backend: Backend | None = Field(
        None,
        description="Run it with this backend (a registered model's export must be stored first: "
        "`counterpoint models export`); served as MODEL?backend=NAME. None: as the name says (torch).",
    )


class ModelVersionInfo(BaseModel):
    """One version of a registered model, with its run's final metrics."""

    name: str
    version: str
    uri: str
    aliases: list[str] = Field(default_factory=list)
    run_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    model_type: str = Field("bi-encoder", description="bi-encoder (embed service) or cross-encoder (rerank).")
    exports: dict[str, str] = Field(
        default_factory=dict,
        description="backend -> 'servable' or 'rejected: why', from `counterpoint models export`.",
    )


class RegisteredModel(BaseModel):
    name: str
    description: str | None = None
    aliases: dict[str, str] = Field(default_factory=dict, description="alias -> version")
    versions: list[ModelVersionInfo] = Field(default_factory=list, description="newest first")


class RegisteredModelList(BaseModel):
    models: list[RegisteredModel]


class AliasUpdate(StrictModel):
    version: str = Field(min_length=1, max_length=20, pattern=r"^[0-9]+$")
