"""verification: the checks a change must pass once live, their runs, the reason of an
automatic rollback, and the soak time an environment requires of what is promoted into it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verification", sa.JSON(), nullable=True))
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("required_soak_seconds", sa.Integer(), nullable=True))
    with op.batch_alter_table("deployment_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    with op.batch_alter_table("deployment_revisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
    op.create_table(
        "verification_runs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("deployment_id", sa.String(length=40), nullable=False),
        sa.Column("change_id", sa.String(length=40), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["deployment_id"], ["deployments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["change_id"], ["deployment_changes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_verification_runs_organization_id"), "verification_runs", ["organization_id"]
    )
    op.create_index(
        op.f("ix_verification_runs_deployment_id"), "verification_runs", ["deployment_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_verification_runs_deployment_id"), table_name="verification_runs")
    op.drop_index(op.f("ix_verification_runs_organization_id"), table_name="verification_runs")
    op.drop_table("verification_runs")
    with op.batch_alter_table("deployment_revisions", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("deployment_changes", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("environments", schema=None) as batch_op:
        batch_op.drop_column("required_soak_seconds")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("verification")
