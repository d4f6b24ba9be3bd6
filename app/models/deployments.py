"""An integration in one environment: its runtime state and its own configuration."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow


class DeploymentStatus(enum.StrEnum):
    NOT_DEPLOYED = "NOT_DEPLOYED"
    IN_PROGRESS = "IN_PROGRESS"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    ERROR = "ERROR"


class Deployment(SQLModel, table=True):
    """One row per (integration, environment): it exists from the moment the environment is in
    the project's pipeline, NOT_DEPLOYED until a build runs there."""

    __tablename__ = "deployments"
    __table_args__ = (sa.UniqueConstraint("integration_id", "environment_id"),)

    id: str = Field(default_factory=lambda: new_id("dep"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    integration_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    environment_id: str = Field(
        sa_column=foreign_key("environments.id", ondelete="CASCADE", nullable=False, index=True)
    )
    status: DeploymentStatus = Field(
        default=DeploymentStatus.NOT_DEPLOYED, sa_column=enum_column(DeploymentStatus)
    )
    build_id: str | None = Field(
        default=None,
        sa_column=foreign_key("builds.id", nullable=True),
    )
    revision: int = 0
    endpoint_url: str | None = Field(default=None, max_length=2000)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # Every configuration change bumps config_version; a restart records what it applied.
    # restartRequired is the difference, so it needs no digest of secret values.
    config_version: int = 0
    applied_config_version: int = 0
    # The checks each change here must pass once live, else it is rolled back
    # (app/services/verification.py: {"checks": [...], "attempts", "interval_s",
    # "failure_limit", "timeout_s"}); null: none.
    verification: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    # The change whose instance serves now (a supervisor restarts it if it dies).
    running_change_id: str | None = Field(default=None, max_length=40)
    # One change at a time: the worker that holds the lease until lease_expires_at.
    lease_owner: str | None = Field(default=None, max_length=100)
    lease_expires_at: datetime | None = Field(
        default=None, sa_column=timestamp_column(nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ConfigValue(SQLModel, table=True):
    """A configuration value of one environment. Secret values hold Fernet ciphertext."""

    __tablename__ = "config_values"
    __table_args__ = (sa.UniqueConstraint("deployment_id", "key"),)

    id: str = Field(default_factory=lambda: new_id("cfg"), primary_key=True, max_length=40)
    deployment_id: str = Field(
        sa_column=foreign_key("deployments.id", ondelete="CASCADE", nullable=False, index=True)
    )
    key: str = Field(max_length=255)
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    secret: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
