"""scheduled promotions: a promotion may start no earlier than its not_before time, and
environments may have deployment windows

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("not_before", app.models.base.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deployment_windows", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("deployment_windows")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("not_before")
