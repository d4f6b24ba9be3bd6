"""emergency promotions: break-glass past a freeze or an approval policy, and whether an
environment allows it

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 16:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("emergency_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("emergency_allowed", sa.Boolean(), server_default=sa.true(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("emergency_allowed")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("emergency_reason")
