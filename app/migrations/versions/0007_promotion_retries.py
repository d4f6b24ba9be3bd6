"""promotion retries: a promotion may retry a FAILED one (promotions.retry_of_id)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retry_of_id", sa.String(length=40), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_promotions_retry_of_id"), ["retry_of_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_promotions_retry_of_id_promotions"),
            "promotions",
            ["retry_of_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_promotions_retry_of_id_promotions"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_promotions_retry_of_id"))
        batch_op.drop_column("retry_of_id")
