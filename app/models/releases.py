"""Releases: several integrations' builds promoted together, in the order of their
dependencies (app/services/releases.py), and the dependencies between integrations."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow


class IntegrationDependency(SQLModel, table=True):
    """``integration_id`` depends on ``depends_on_id``: in a release, the second goes first."""

    __tablename__ = "integration_dependencies"
    __table_args__ = (sa.UniqueConstraint("integration_id", "depends_on_id"),)

    id: str = Field(default_factory=lambda: new_id("idp"), primary_key=True, max_length=40)
    integration_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    depends_on_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", nullable=False, index=True)
    )


class ReleaseStatus(enum.StrEnum):
    # Into a protected environment: its one request waits for reviews.
    PENDING_APPROVAL = "PENDING_APPROVAL"
    # Its members are promoted one after the other.
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    # A member failed: the members it had changed were rolled back (unless kept).
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self not in (ReleaseStatus.PENDING_APPROVAL, ReleaseStatus.RUNNING)


class Release(SQLModel, table=True):
    __tablename__ = "releases"

    id: str = Field(default_factory=lambda: new_id("rel"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    name: str = Field(max_length=200)
    source_environment_id: str = Field(sa_column=foreign_key("environments.id"))
    target_environment_id: str = Field(sa_column=foreign_key("environments.id"))
    status: ReleaseStatus = Field(sa_column=enum_column(ReleaseStatus))
    # In the order they run: [{"integration_id", "build_id"}].
    members: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # A Fernet token of JSON: each member's overrides, {integration_id: [{"key", "value"}]}.
    overrides_sealed: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # When a member fails, keep the members already changed instead of rolling them back.
    keep_on_failure: bool = False
    message: str | None = Field(default=None, max_length=2000)
    requested_by_id: str = Field(sa_column=foreign_key("users.id"))
    # The members already started: the next one to start is members[started].
    started: int = 0
    # The integrations whose change this release rolled back after a member failed.
    rolled_back: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class ReleaseEvent(SQLModel, table=True):
    __tablename__ = "release_events"

    id: str = Field(default_factory=lambda: new_id("rle"), primary_key=True, max_length=40)
    release_id: str = Field(
        sa_column=foreign_key("releases.id", ondelete="CASCADE", nullable=False, index=True)
    )
    status: ReleaseStatus = Field(sa_column=enum_column(ReleaseStatus))
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
