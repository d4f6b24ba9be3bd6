"""Projects, their integrations and the immutable builds of an integration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import foreign_key, timestamp_column, utcnow


class Project(SQLModel, table=True):
    __tablename__ = "projects"
    __table_args__ = (sa.UniqueConstraint("organization_id", "slug"),)

    id: str = Field(default_factory=lambda: new_id("prj"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    pipeline_id: str = Field(sa_column=foreign_key("pipelines.id", nullable=False, index=True))
    name: str = Field(max_length=100)
    slug: str = Field(max_length=63)
    description: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Integration(SQLModel, table=True):
    __tablename__ = "integrations"
    __table_args__ = (sa.UniqueConstraint("project_id", "slug"),)

    id: str = Field(default_factory=lambda: new_id("int"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    project_id: str = Field(
        sa_column=foreign_key("projects.id", ondelete="CASCADE", nullable=False, index=True)
    )
    name: str = Field(max_length=100)
    slug: str = Field(max_length=63)
    description: str | None = Field(default=None, max_length=1000)
    # The declared configurables, as a list of ConfigKey dicts (see app.services.configuration).
    config_schema: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Build(SQLModel, table=True):
    __tablename__ = "builds"
    __table_args__ = (sa.UniqueConstraint("integration_id", "version"),)

    id: str = Field(default_factory=lambda: new_id("bld"), primary_key=True, max_length=40)
    integration_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    version: str = Field(max_length=100)
    artifact: str = Field(max_length=4000)
    commit: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
