"""Models: the served ones (``/v1/models``, OpenAI's shape) and the MLflow registry's (``/v1/registry``)."""

from __future__ import annotations

import re

from fastapi import APIRouter

from counterpoint.errors import InvalidInput, NotFound
from counterpoint.models.export import names_default
from counterpoint.schemas import (
    AliasUpdate,
    ModelCard,
    ModelList,
    ModelLoad,
    RegisteredModel,
    RegisteredModelList,
)
from counterpoint.services.gateway.auth import READ, TRAIN
from counterpoint.services.gateway.dependencies import Services

router = APIRouter(tags=["models"])

ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_\-]{0,62}")
RESERVED_ALIAS = re.compile(r"[vV]\d+|latest")


@router.get("/v1/models", response_model=ModelList, dependencies=[READ])
async def models(services: Services) -> ModelList:
    cards = await services.core.models() + await services.core.rerank_models()
    if services.generation_service is not None:
        cards += await services.generation_service.models()
    return ModelList(data=cards)


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, dependencies=[READ])
async def model(model_id: str, services: Services, backend: str | None = None) -> ModelCard:
    """One served model by its id (OpenAI's ``models.retrieve``); ids may hold slashes (``models:/N/1``)
    and a backend, which a URL carries as its query (``/v1/models/models:/N/1?backend=onnx``)."""
    if backend is not None:
        model_id = f"{model_id}?backend={backend}"
    cards = (await models(services)).data
    for card in cards:
        if card.id == model_id:
            return card
    default = next((card for card in cards if card.kind == "embedding"), None)
    if default is not None and names_default(model_id, default.id):
        return default
    raise NotFound(f"model '{model_id}' is not served; served: {', '.join(c.id for c in cards)}")


@router.post("/v1/models", response_model=ModelCard, dependencies=[TRAIN])
async def load_model(body: ModelLoad, services: Services) -> ModelCard:
    """Deploy a model to the embedding service: a served name, ``models:/NAME/VERSION`` or
    ``models:/NAME@ALIAS`` (resolved to its version now), run by ``backend``. Later requests name it
    by the card's ``id``."""
    return await services.core.load_model(body.model, body.kind, body.backend)


@router.get("/v1/registry/models", response_model=RegisteredModelList, dependencies=[READ])
async def registered_models(services: Services) -> RegisteredModelList:
    return RegisteredModelList(models=await services.registry().list())


@router.get("/v1/registry/models/{name}", response_model=RegisteredModel, dependencies=[READ])
async def registered_model(name: str, services: Services) -> RegisteredModel:
    return await services.registry().get(name)


@router.put(
    "/v1/registry/models/{name}/aliases/{alias}", response_model=RegisteredModel, dependencies=[TRAIN]
)
async def set_alias(name: str, alias: str, body: AliasUpdate, services: Services) -> RegisteredModel:
    """Point ``models:/NAME@ALIAS`` (e.g. ``champion``) at a version."""
    if not ALIAS.fullmatch(alias) or RESERVED_ALIAS.fullmatch(alias):
        raise InvalidInput(
            f"alias '{alias}': use letters, digits, '_' or '-', starting with a letter "
            "(not 'latest' or v<digits>, which MLflow reserves)"
        )
    return await services.registry().set_alias(name, alias, body.version)


@router.delete(
    "/v1/registry/models/{name}/aliases/{alias}", response_model=RegisteredModel, dependencies=[TRAIN]
)
async def delete_alias(name: str, alias: str, services: Services) -> RegisteredModel:
    return await services.registry().delete_alias(name, alias)
