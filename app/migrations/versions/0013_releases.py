"""releases: several integrations promoted together in the order of their dependencies

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RELEASE_STATUS = sa.Enum(
    "PENDING_APPROVAL",
    "RUNNING",
    "SUCCEEDED",
    "FAILED",
    "REJECTED",
    "CANCELLED",
    "EXPIRED",
    name="releasestatus",
    native_enum=False,
    length=32,
)


def upgrade() -> None:
    op.create_table(
        "integration_dependencies",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column("depends_on_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["depends_on_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("integration_id", "depends_on_id"),
    )
    for column in ("integration_id", "depends_on_id"):
        op.create_index(
            op.f(f"ix_integration_dependencies_{column}"), "integration_dependencies", [column]
        )
    op.create_table(
        "releases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("source_environment_id", sa.String(length=40), nullable=False),
        sa.Column("target_environment_id", sa.String(length=40), nullable=False),
        sa.Column("status", RELEASE_STATUS, nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("overrides_sealed", sa.Text(), nullable=False),
        sa.Column("keep_on_failure", sa.Boolean(), nullable=False),
        sa.Column("message", sa.String(length=2000), nullable=True),
        sa.Column("requested_by_id", sa.String(length=40), nullable=False),
        sa.Column("started", sa.Integer(), nullable=False),
        sa.Column("rolled_back", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_environment_id"], ["environments.id"]),
        sa.ForeignKeyConstraint(["target_environment_id"], ["environments.id"]),
        sa.ForeignKeyConstraint(["requested_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_releases_organization_id"), "releases", ["organization_id"])
    op.create_table(
        "release_events",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("status", RELEASE_STATUS, nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["release_id"], ["releases.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_release_events_release_id"), "release_events", ["release_id"])
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("release_id", sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f("ix_promotions_release_id"), ["release_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_promotions_release_id_releases"),
            "releases",
            ["release_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_promotions_release_id_releases"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_promotions_release_id"))
        batch_op.drop_column("release_id")
    op.drop_index(op.f("ix_release_events_release_id"), table_name="release_events")
    op.drop_table("release_events")
    op.drop_index(op.f("ix_releases_organization_id"), table_name="releases")
    op.drop_table("releases")
    for column in ("depends_on_id", "integration_id"):
        op.drop_index(
            op.f(f"ix_integration_dependencies_{column}"), table_name="integration_dependencies"
        )
    op.drop_table("integration_dependencies")
