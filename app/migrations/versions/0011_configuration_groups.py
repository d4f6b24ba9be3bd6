"""configuration groups: an organization's keys with a value per environment, linked to
integrations; a change's snapshot says which of its values came from which group

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "configuration_groups",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("organization_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.Column(
            "editor_role",
            sa.Enum(
                "ADMIN",
                "DEVELOPER",
                "APPROVER",
                "VIEWER",
                name="role",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organizations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "name"),
    )
    op.create_index(
        op.f("ix_configuration_groups_organization_id"),
        "configuration_groups",
        ["organization_id"],
    )
    op.create_table(
        "configuration_group_values",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("secret", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["configuration_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["environment_id"], ["environments.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "environment_id", "key"),
    )
    for column in ("group_id", "environment_id"):
        op.create_index(
            op.f(f"ix_configuration_group_values_{column}"),
            "configuration_group_values",
            [column],
        )
    op.create_table(
        "configuration_group_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("group_id", sa.String(length=40), nullable=False),
        sa.Column("integration_id", sa.String(length=40), nullable=False),
        sa.Column(
            "mode",
            sa.Enum("ENVIRONMENT", "FILE", name="grouplinkmode", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["configuration_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["integration_id"], ["integrations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("group_id", "integration_id"),
    )
    for column in ("group_id", "integration_id"):
        op.create_index(
            op.f(f"ix_configuration_group_links_{column}"),
            "configuration_group_links",
            [column],
        )
    for table in ("deployment_changes", "deployment_revisions"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("snapshot_groups", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ("deployment_revisions", "deployment_changes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("snapshot_groups")
    for table, columns in (
        ("configuration_group_links", ("integration_id", "group_id")),
        ("configuration_group_values", ("environment_id", "group_id")),
        ("configuration_groups", ("organization_id",)),
    ):
        for column in columns:
            op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
        op.drop_table(table)
