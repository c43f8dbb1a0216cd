"""Re-index mirror state in the registry, shared by every gateway replica.

``collections.mirror_physical`` / ``mirror_model``: the collection being built by a re-index, where
writes also go; ``mirrored_writes``: the ids those writes touched, which the copy must not overwrite.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("mirror_physical", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("mirror_model", sa.String(length=255), nullable=True))
    op.create_table(
        "mirrored_writes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("physical_name", sa.String(length=255), nullable=False),
        sa.Column("point_id", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrored_writes")),
        sa.UniqueConstraint(
            "physical_name", "point_id", name=op.f("uq_mirrored_writes_physical_name_point_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("mirrored_writes")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("mirror_model")
        batch.drop_column("mirror_physical")
