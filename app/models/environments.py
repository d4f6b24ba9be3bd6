"""Data planes and the ordered environments that run on them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow


class RuntimeKind(enum.StrEnum):
    LOCAL_PROCESS = "LOCAL_PROCESS"
    CONTAINER = "CONTAINER"
    KUBERNETES = "KUBERNETES"


class DataPlane(SQLModel, table=True):
    """Where an organization's environments run. A data plane belongs to one organization and
    its commands are routed by its id, never by its name (names are unique only within the
    organization).

    The exception is the installation's own ``local`` data plane, which every organization
    starts with: each organization has a row for it (``installation_local``), and all those
    rows are served by the operator's ``local`` workers (one queue), which run only the
    organizations the operator admits (``PROMENADE_LOCAL_ORGANIZATIONS``). No API call sets
    ``installation_local``: an organization cannot make a data plane of its own that the
    operator's workers would serve.
    """

    __tablename__ = "data_planes"
    __table_args__ = (sa.UniqueConstraint("organization_id", "name"),)

    id: str = Field(default_factory=lambda: new_id("dp"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", index=True)
    )
    name: str = Field(max_length=63)
    runtime: RuntimeKind = Field(sa_column=enum_column(RuntimeKind))
    settings: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    installation_local: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Environment(SQLModel, table=True):
    __tablename__ = "environments"
    __table_args__ = (
        # Names are unique ignoring case: name_key holds the case-folded name.
        sa.UniqueConstraint("organization_id", "name_key"),
        sa.UniqueConstraint("organization_id", "dns_prefix"),
    )

    id: str = Field(default_factory=lambda: new_id("env"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", index=True)
    )
    data_plane_id: str = Field(sa_column=foreign_key("data_planes.id", nullable=False, index=True))
    name: str = Field(max_length=64)
    name_key: str = Field(max_length=64)
    description: str | None = Field(default=None, max_length=1000)
    dns_prefix: str = Field(max_length=63)
    critical: bool = False
    position: int = 0
    frozen: bool = False
    freeze_reason: str | None = Field(default=None, max_length=1000)
    # Whether an ADMIN may promote here past a freeze or the approval policy (break-glass).
    emergency_allowed: bool = Field(
        default=True, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.true())
    )
    # How long a build must have run healthy (ACTIVE, verified) in the environment before it
    # is promoted here from there; null: no wait.
    required_soak_seconds: int | None = None
    # When promotions may start here (app/services/windows.py); null: at any time.
    deployment_windows: list[dict[str, Any]] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
