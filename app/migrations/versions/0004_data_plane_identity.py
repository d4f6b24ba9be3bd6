"""data planes routed by identity: the installation's local data plane is marked as such

Until now commands were routed by data plane *name* across organizations. From here on they
are routed by the data plane's id, except for the rows of the installation's own ``local``
data plane (every organization's default), which the operator's ``local`` workers serve.
Those rows are the ones every organization was created with: LOCAL_PROCESS, named ``local``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("data_planes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("installation_local", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    op.execute(
        "UPDATE data_planes SET installation_local = TRUE "
        "WHERE name = 'local' AND runtime = 'LOCAL_PROCESS'"
    )


def downgrade() -> None:
    with op.batch_alter_table("data_planes", schema=None) as batch_op:
        batch_op.drop_column("installation_local")
