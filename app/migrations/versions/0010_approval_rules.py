"""approval rules: a policy holds several rules, each with its reviewers and required
approvals, and a review keeps the rules it counted toward; an index for the schedule sweep

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Policies set before keep their one rule in the columns they had (rules empty), and
    # reviews given before count toward their request's one rule (counted_toward null).
    with op.batch_alter_table("approval_policies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rules", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("counted_toward", sa.JSON(), nullable=True))
    op.create_index(
        "ix_promotions_scheduled_not_before",
        "promotions",
        ["not_before"],
        sqlite_where=sa.text("status = 'SCHEDULED'"),
        postgresql_where=sa.text("status = 'SCHEDULED'"),
    )


def downgrade() -> None:
    op.drop_index("ix_promotions_scheduled_not_before", table_name="promotions")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("counted_toward")
    with op.batch_alter_table("approval_policies", schema=None) as batch_op:
        batch_op.drop_column("rules")
