"""change requests: in a protected environment, deploys, configuration changes, restarts and
rollbacks are requests too (promotions of another kind)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.Enum(
                    "PROMOTION",
                    "DEPLOY",
                    "CONFIGURATION",
                    "RESTART",
                    "ROLLBACK",
                    name="requestkind",
                    native_enum=False,
                    length=32,
                ),
                server_default="PROMOTION",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("rollback_to_revision", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("config_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("deployment_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expected_config_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deployment_changes", schema=None) as batch_op:
        batch_op.drop_column("expected_config_version")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_column("config_version")
        batch_op.drop_column("rollback_to_revision")
        batch_op.drop_column("kind")
