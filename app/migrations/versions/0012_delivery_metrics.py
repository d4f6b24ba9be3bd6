"""delivery metrics: an index on deployment_changes (deployment_id, finished_at), for the
changes of a deployment that ended in a window and the next success after each

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_deployment_changes_deployment_id_finished_at",
        "deployment_changes",
        ["deployment_id", "finished_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_deployment_changes_deployment_id_finished_at", table_name="deployment_changes"
    )
