"""Governance: approval policies, reviews of promotion requests, and the audit log."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow


class ReviewDecision(enum.StrEnum):
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"


class ApprovalPolicy(SQLModel, table=True):
    """Promotions into the environment need reviews. A request keeps the rules it was filed
    under (a copy on the promotion): changing the policy applies to new requests only.

    ``rules`` (see app/services/approval_rules.py) is what decides; the columns before it hold
    every rule's reviewers together and the approvals the rules add up to, and for a policy set
    before rules were kept (``rules`` empty) its one rule."""

    __tablename__ = "approval_policies"

    id: str = Field(default_factory=lambda: new_id("apl"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False, index=True)
    )
    environment_id: str = Field(
        sa_column=foreign_key("environments.id", ondelete="CASCADE", nullable=False, unique=True)
    )
    required_approvals: int
    approver_roles: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    approver_ids: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    rules: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=sa.Column(sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    )
    allow_self_approval: bool = False
    expires_after_hours: int | None = None
    updated_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class Review(SQLModel, table=True):
    __tablename__ = "reviews"
    # One review per reviewer and request.
    __table_args__ = (sa.UniqueConstraint("promotion_id", "reviewer_id"),)

    id: str = Field(default_factory=lambda: new_id("rvw"), primary_key=True, max_length=40)
    promotion_id: str = Field(
        sa_column=foreign_key("promotions.id", ondelete="CASCADE", nullable=False, index=True)
    )
    reviewer_id: str = Field(sa_column=foreign_key("users.id", nullable=False))
    decision: ReviewDecision = Field(sa_column=enum_column(ReviewDecision))
    comment: str | None = Field(default=None, max_length=2000)
    # The names of the request's rules the reviewer satisfied when they reviewed; null for a
    # review from before rules, which counts toward the request's one rule.
    counted_toward: list[str] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class AuditEvent(SQLModel, table=True):
    """Who did what, to which object, when. ``detail`` never holds a secret value."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_organization_id_id", "organization_id", "id"),)

    id: str = Field(default_factory=lambda: new_id("aud"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", nullable=False)
    )
    actor_id: str | None = Field(default=None, sa_column=foreign_key("users.id", nullable=True))
    action: str = Field(max_length=100)
    subject_id: str = Field(max_length=40)
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
