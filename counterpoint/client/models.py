"""SDK methods for health, served and registered models, and embeddings."""

from __future__ import annotations

import numpy as np

from counterpoint.client.transport import Transport
from counterpoint.schemas import (
    EmbeddingRequest,
    EmbeddingResponse,
    Health,
    ModelCard,
    ModelList,
    RegisteredModel,
    RegisteredModelList,
)
from counterpoint.schemas.embeddings import decode_embedding
from counterpoint.settings import Backend


class ModelsAPI(Transport):
    """``/healthz``, ``/v1/models``, ``/v1/registry/models`` and ``/v1/embeddings``."""

    def health(self) -> Health:
        return Health.model_validate(self._request("GET", "/healthz"))

    def models(self) -> list[ModelCard]:
        return ModelList.model_validate(self._request("GET", "/v1/models")).data

    def deploy_model(
        self, model: str, *, kind: str = "embedding", backend: Backend | None = None
    ) -> ModelCard:
        """Load ``model`` into the embedding service (``models:/NAME@champion``, ``models:/NAME/3``), or
        with ``kind="reranker"`` into the rerank service; the card's ``id`` is the concrete version.

        ``backend`` (``onnx``, ``onnx-int8``, ``openvino``, ``openvino-int8``) runs an export stored with
        the version (``counterpoint models export``); the card's ``id`` then ends in ``?backend=...``:
        name the model by it in embeddings and collections."""
        body: dict[str, str] = {"model": model, "kind": kind}
        if backend is not None:
            body["backend"] = backend
        return ModelCard.model_validate(self._request("POST", "/v1/models", json=body))

    def registered_models(self) -> list[RegisteredModel]:
        """Models in the MLflow registry, each with its aliases and newest versions (with metrics)."""
        return RegisteredModelList.model_validate(self._request("GET", "/v1/registry/models")).models

    def registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self._request("GET", f"/v1/registry/models/{name}"))

    def set_alias(self, name: str, version: str | int, alias: str = "champion") -> RegisteredModel:
        """Point ``models:/name@alias`` at ``version``; services following the alias move within seconds."""
        data = self._request(
            "PUT", f"/v1/registry/models/{name}/aliases/{alias}", json={"version": str(version)}
        )
        return RegisteredModel.model_validate(data)

    def delete_alias(self, name: str, alias: str = "champion") -> RegisteredModel:
        data = self._request("DELETE", f"/v1/registry/models/{name}/aliases/{alias}")
        return RegisteredModel.model_validate(data)

    def embed(
        self, input: str | list[str], *, model: str | None = None, dimensions: int | None = None
    ) -> EmbeddingResponse:
        """Embed texts; the vectors travel as base64 float32 (a third of the bytes of JSON floats, nothing
        to parse) and come back here as lists of floats."""
        data = self._embeddings(input, model, dimensions)
        for item in data["data"]:
            item["embedding"] = decode_embedding(item["embedding"]).tolist()
        return EmbeddingResponse.model_validate(data)

    def embed_array(
        self, input: str | list[str], *, model: str | None = None, dimensions: int | None = None
    ) -> np.ndarray:
        """Embed texts into a float32 matrix, one unit-length row per text in input order: what
        numpy, FAISS or a dot product want, without a Python float per coordinate on the way."""
        rows = sorted(self._embeddings(input, model, dimensions)["data"], key=lambda item: item["index"])
        return np.stack([decode_embedding(item["embedding"]) for item in rows])

    def _embeddings(self, input: str | list[str], model: str | None, dimensions: int | None) -> dict:
        """``/v1/embeddings``'s answer with base64 float32 vectors (a third of JSON floats' bytes)."""
        body = EmbeddingRequest(input=input, model=model, dimensions=dimensions, encoding_format="base64")
        return self._request("POST", "/v1/embeddings", json=body.model_dump(exclude_none=True))
