"""The registry's models table: servable models registered under a unique name."""

from __future__ import annotations

from functools import partial

from sqlalchemy import select

from counterpoint.infra.db.models import MODEL_KINDS, ModelRow
from counterpoint.infra.db.registry.base import RegistryBase, check_choice
from counterpoint.infra.db.registry.records import ModelRecord, to_record

_model = partial(to_record, ModelRecord)


class ModelsTable(RegistryBase):
    """The models part of :class:`~counterpoint.infra.db.registry.Registry`."""

    def register_model(
        self, name: str, uri: str, *, kind: str = "embedding", dimensions: int | None = None
    ) -> ModelRecord:
        """Register a servable model under a unique name. Raises ``Conflict``."""
        check_choice("model kind", kind, MODEL_KINDS)
        row = ModelRow(name=name, uri=uri, kind=kind, dimensions=dimensions)
        taken = select(ModelRow.id).where(ModelRow.name == name)
        return self._insert(row, _model, f"model {name!r} is already registered", taken)

    def get_model(self, name: str) -> ModelRecord:
        return self._get(
            select(ModelRow).where(ModelRow.name == name), _model, f"model {name!r} is not registered"
        )

    def list_models(self, *, kind: str | None = None) -> list[ModelRecord]:
        query = select(ModelRow).order_by(ModelRow.name)
        if kind is not None:
            query = query.where(ModelRow.kind == kind)
        return self._list(query, _model)
