"""Configuration groups: an organization's set of keys with a value per environment, linked to
integrations, whose deployments run the group's values under their own
(app/services/configuration_groups.py)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow
from app.models.identity import Role


class GroupLinkMode(enum.StrEnum):
    # Each key as a value of its own: an environment variable, a setting of config.toml, and
    # for a secret a file under secrets/.
    ENVIRONMENT = "ENVIRONMENT"
    # The group's keys together, as one TOML file: files/groups/<name>.toml.
    FILE = "FILE"


class ConfigurationGroup(SQLModel, table=True):
    __tablename__ = "configuration_groups"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: str = Field(default_factory=lambda: new_id("cgr"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    name: str = Field(max_length=63)
    description: str | None = Field(default=None, max_length=2000)
    # The keys it holds, in order: [{"key", "secret"}].
    keys: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # Who edits it besides ADMINs (null: ADMINs only).
    editor_role: Role | None = Field(default=None, sa_column=enum_column(Role, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ConfigurationGroupValue(SQLModel, table=True):
    """A group's value of one key in one environment. Secret values hold Fernet ciphertext."""

    __tablename__ = "configuration_group_values"
    __table_args__ = (sa.UniqueConstraint("group_id", "environment_id", "key"),)

    id: str = Field(default_factory=lambda: new_id("cgv"), primary_key=True, max_length=40)
    group_id: str = Field(
        sa_column=foreign_key(
            "configuration_groups.id", ondelete="CASCADE", nullable=False, index=True
        )
    )
    environment_id: str = Field(
        sa_column=foreign_key("environments.id", ondelete="CASCADE", nullable=False, index=True)
    )
    key: str = Field(max_length=255)
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    secret: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ConfigurationGroupLink(SQLModel, table=True):
    """The integration's deployments run the group's values (under their own)."""

    __tablename__ = "configuration_group_links"
    __table_args__ = (sa.UniqueConstraint("group_id", "integration_id"),)

    id: str = Field(default_factory=lambda: new_id("cgl"), primary_key=True, max_length=40)
    group_id: str = Field(
        sa_column=foreign_key(
            "configuration_groups.id", ondelete="CASCADE", nullable=False, index=True
        )
    )
    integration_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    mode: GroupLinkMode = Field(
        default=GroupLinkMode.ENVIRONMENT, sa_column=enum_column(GroupLinkMode)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
