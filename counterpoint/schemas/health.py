"""``GET /healthz``: each part's status and the overall one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ComponentHealth(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    components: dict[str, ComponentHealth]
