"""Deployment pipelines: ordered subsets of an organization's environments."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import foreign_key, timestamp_column, utcnow


class Pipeline(SQLModel, table=True):
    __tablename__ = "pipelines"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name_key"),)

    id: str = Field(default_factory=lambda: new_id("pl"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    name: str = Field(max_length=100)
    name_key: str = Field(max_length=100)
    is_default: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class PipelineStage(SQLModel, table=True):
    """One environment of a pipeline, at its place in the promotion order."""

    __tablename__ = "pipeline_stages"

    pipeline_id: str = Field(
        sa_column=foreign_key("pipelines.id", ondelete="CASCADE", primary_key=True)
    )
    environment_id: str = Field(
        sa_column=foreign_key("environments.id", primary_key=True, index=True)
    )
    position: int
