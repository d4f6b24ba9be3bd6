"""Promotions, the changes that workers apply to deployments, and what each change left behind."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.ids import new_id
from app.models.base import enum_column, foreign_key, timestamp_column, utcnow


class PromotionStatus(enum.StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    # It may run (no review needed, or approved) but not before its notBefore time.
    SCHEDULED = "SCHEDULED"
    QUEUED = "QUEUED"
    APPLYING_CONFIGURATION = "APPLYING_CONFIGURATION"
    RESTARTING = "RESTARTING"
    # The new instance takes traffic; the deployment's checks run. Failing, it is rolled back.
    VERIFYING = "VERIFYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    # A newer build was queued for the deployment before this one started: it never runs.
    SUPERSEDED = "SUPERSEDED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_PROMOTION_STATUSES


FINAL_PROMOTION_STATUSES = frozenset(
    {
        PromotionStatus.SUCCEEDED,
        PromotionStatus.FAILED,
        PromotionStatus.REJECTED,
        PromotionStatus.CANCELLED,
        PromotionStatus.EXPIRED,
        PromotionStatus.SUPERSEDED,
    }
)


class RequestKind(enum.StrEnum):
    """What a request (a Promotion row) asks for. A promotion is one; in an environment with
    an approval policy, every change of what runs there is filed as a request too."""

    PROMOTION = "PROMOTION"
    DEPLOY = "DEPLOY"
    CONFIGURATION = "CONFIGURATION"
    RESTART = "RESTART"
    ROLLBACK = "ROLLBACK"
    # A release into a protected environment: one request for all its members.
    RELEASE = "RELEASE"


class ChangeKind(enum.StrEnum):
    """What a change does to a deployment. The revision cause is the kind, but for the three
    that only start, stop or resume the same revision."""

    DEPLOY = "DEPLOY"
    PROMOTION = "PROMOTION"
    CONFIG_CHANGE = "CONFIG_CHANGE"
    RESTART = "RESTART"
    ROLLBACK = "ROLLBACK"
    SUSPEND = "SUSPEND"
    RESUME = "RESUME"


class RevisionCause(enum.StrEnum):
    DEPLOY = "DEPLOY"
    PROMOTION = "PROMOTION"
    CONFIG_CHANGE = "CONFIG_CHANGE"
    RESTART = "RESTART"
    ROLLBACK = "ROLLBACK"


class Promotion(SQLModel, table=True):
    __tablename__ = "promotions"
    __table_args__ = (
        # A retried request with the same key returns the first promotion.
        sa.UniqueConstraint("requested_by_id", "idempotency_key"),
        # One pending request per integration and target.
        sa.Index(
            "uq_promotions_one_pending",
            "integration_id",
            "target_environment_id",
            unique=True,
            sqlite_where=sa.text("status = 'PENDING_APPROVAL'"),
            postgresql_where=sa.text("status = 'PENDING_APPROVAL'"),
        ),
        # The schedule sweep's question, every second: which scheduled ones are due.
        sa.Index(
            "ix_promotions_scheduled_not_before",
            "not_before",
            sqlite_where=sa.text("status = 'SCHEDULED'"),
            postgresql_where=sa.text("status = 'SCHEDULED'"),
        ),
    )

    id: str = Field(default_factory=lambda: new_id("pro"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", index=True)
    )
    integration_id: str = Field(
        sa_column=foreign_key("integrations.id", ondelete="CASCADE", index=True)
    )
    build_id: str = Field(sa_column=foreign_key("builds.id", index=True))
    source_environment_id: str = Field(sa_column=foreign_key("environments.id", index=True))
    target_environment_id: str = Field(sa_column=foreign_key("environments.id", index=True))
    deployment_id: str = Field(
        sa_column=foreign_key("deployments.id", ondelete="CASCADE", index=True)
    )
    status: PromotionStatus = Field(sa_column=enum_column(PromotionStatus))
    kind: RequestKind = Field(
        default=RequestKind.PROMOTION,
        sa_column=sa.Column(
            sa.Enum(
                RequestKind,
                native_enum=False,
                length=32,
                values_callable=lambda kinds: [k.value for k in kinds],
            ),
            nullable=False,
            server_default=RequestKind.PROMOTION.value,
        ),
    )
    # For a rollback request: the revision it re-applies.
    rollback_to_revision: int | None = None
    # The target's configuration version when a request was filed for review: the reviewed
    # change runs only if nothing was stored since (else it would run what nobody reviewed).
    config_version: int | None = None
    message: str | None = Field(default=None, max_length=2000)
    requested_by_id: str = Field(sa_column=foreign_key("users.id", index=True))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    # A Fernet token of JSON: a promotion's {"overrides", "copied"} entries; for the other kinds
    # {"values"} (the configuration the change will run with); for every kind "changes", the
    # plan a reviewer sees (how the running configuration changes, secrets without values).
    overrides_sealed: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    copy_source_configuration: bool = False
    idempotency_key: str | None = Field(default=None, max_length=200)
    required_approvals: int = 0
    # The approval rules the request was filed under ({"rules", "allow_self_approval"}, and
    # every rule's "roles" and "approver_ids" together; see approval_rules.py); null when the
    # target needed no review. ``required_approvals`` is what the rules add up to.
    approval_rule: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    expires_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    # The earliest time the request may start: until then (once it may run) it is SCHEDULED.
    not_before: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
    # Break-glass: an ADMIN's promotion past a freeze or the approval policy, and why; it runs
    # at once (the workers do not hold it back for the freeze) and is marked in its events and
    # the audit log. Null for every other request.
    emergency_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # The release it belongs to: a member's promotion, or a release's one request for review.
    release_id: str | None = Field(
        default=None,
        sa_column=foreign_key("releases.id", nullable=True, ondelete="CASCADE", index=True),
    )
    # A retry: the FAILED promotion whose build, overrides and target it asks for again.
    retry_of_id: str | None = Field(
        default=None,
        sa_column=foreign_key("promotions.id", nullable=True, ondelete="SET NULL", index=True),
    )


class PromotionEvent(SQLModel, table=True):
    """Every status change of a promotion, oldest first."""

    __tablename__ = "promotion_events"

    id: str = Field(default_factory=lambda: new_id("pev"), primary_key=True, max_length=40)
    promotion_id: str = Field(
        sa_column=foreign_key("promotions.id", ondelete="CASCADE", index=True)
    )
    status: PromotionStatus = Field(sa_column=enum_column(PromotionStatus))
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class ChangeStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    APPLYING_CONFIGURATION = "APPLYING_CONFIGURATION"
    RESTARTING = "RESTARTING"
    # Live (its revision written), while the deployment's verification checks run.
    VERIFYING = "VERIFYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # A newer build was queued for the deployment before this change started (never runs).
    SUPERSEDED = "SUPERSEDED"

    @property
    def is_final(self) -> bool:
        return self in FINAL_CHANGE_STATUSES


FINAL_CHANGE_STATUSES = frozenset(
    {
        ChangeStatus.SUCCEEDED,
        ChangeStatus.FAILED,
        ChangeStatus.CANCELLED,
        ChangeStatus.SUPERSEDED,
    }
)


class DeploymentChange(SQLModel, table=True):
    """One unit of work on one deployment. A deployment's changes run one at a time, in the
    order of their ids; the worker that holds the deployment's lease runs them."""

    __tablename__ = "deployment_changes"
    __table_args__ = (
        # A retried deploy with the same key returns the first one's deployment.
        sa.UniqueConstraint("actor_id", "idempotency_key"),
        # Delivery metrics (app/services/delivery_metrics.py): a deployment's changes that
        # ended in a window, and the next one to succeed after each, are range scans.
        sa.Index("ix_deployment_changes_deployment_id_finished_at", "deployment_id", "finished_at"),
    )

    id: str = Field(default_factory=lambda: new_id("chg"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", index=True)
    )
    deployment_id: str = Field(
        sa_column=foreign_key("deployments.id", ondelete="CASCADE", index=True)
    )
    kind: ChangeKind = Field(sa_column=enum_column(ChangeKind))
    status: ChangeStatus = Field(default=ChangeStatus.QUEUED, sa_column=enum_column(ChangeStatus))
    promotion_id: str | None = Field(
        default=None,
        sa_column=foreign_key("promotions.id", nullable=True, ondelete="CASCADE", index=True),
    )
    # The build to run; null: the build running now (restart, config change, resume).
    build_id: str | None = Field(
        default=None, sa_column=foreign_key("builds.id", nullable=True, index=True)
    )
    # For a rollback: the revision whose build and configuration snapshot are re-applied.
    rollback_to_revision: int | None = None
    # The configuration applied, frozen at APPLYING_CONFIGURATION: a Fernet token of JSON.
    snapshot_sealed: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    snapshot_digest: str | None = Field(default=None, max_length=64)
    # Which of the snapshot's keys came from configuration groups: {key: {"group", "secret",
    # "file"}} (configuration_groups.py); null or empty: all are the deployment's own.
    snapshot_groups: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    # The configuration version that the snapshot reflects (for restartRequired).
    snapshot_config_version: int | None = None
    # When set, the change runs only if the deployment's configuration is still at this
    # version: a reviewed request's, or an unreviewed restart's in a protected environment.
    expected_config_version: int | None = None
    actor_id: str | None = Field(
        default=None, sa_column=foreign_key("users.id", nullable=True, index=True)
    )
    idempotency_key: str | None = Field(default=None, max_length=200)
    # The last error: of the final failure, or of an attempt that will be retried.
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    # Why the change was made, when nobody asked for it (an automatic rollback's failed
    # verification); its revision keeps it.
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    finished_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))


class DeploymentRevision(SQLModel, table=True):
    __tablename__ = "deployment_revisions"
    # One row per revision number: the database refuses a change applied twice.
    __table_args__ = (sa.UniqueConstraint("deployment_id", "revision"),)

    id: str = Field(default_factory=lambda: new_id("rev"), primary_key=True, max_length=40)
    deployment_id: str = Field(
        sa_column=foreign_key("deployments.id", ondelete="CASCADE", index=True)
    )
    revision: int
    build_id: str = Field(sa_column=foreign_key("builds.id", index=True))
    configuration_digest: str = Field(max_length=64)
    # The configuration applied: a Fernet token of JSON, so a rollback can re-apply it.
    snapshot_sealed: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    # Which of its keys came from configuration groups (as on the change).
    snapshot_groups: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    cause: RevisionCause = Field(sa_column=enum_column(RevisionCause))
    change_id: str = Field(sa_column=foreign_key("deployment_changes.id", index=True))
    promotion_id: str | None = Field(
        default=None, sa_column=foreign_key("promotions.id", nullable=True, index=True)
    )
    actor_id: str | None = Field(
        default=None, sa_column=foreign_key("users.id", nullable=True, index=True)
    )
    # The change's reason (an automatic rollback: the verification that failed).
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class VerificationRun(SQLModel, table=True):
    """One run of a deployment's verification checks: after a change went live, or asked for
    (``verifyDeployment``). Newest last; the answers say how each check did, attempt by
    attempt (never a response's body: it may hold anything)."""

    __tablename__ = "verification_runs"

    id: str = Field(default_factory=lambda: new_id("ver"), primary_key=True, max_length=40)
    organization_id: str = Field(
        sa_column=foreign_key("organizations.id", ondelete="CASCADE", index=True)
    )
    deployment_id: str = Field(
        sa_column=foreign_key("deployments.id", ondelete="CASCADE", index=True)
    )
    # The change it verified; null for one asked for.
    change_id: str | None = Field(
        default=None,
        sa_column=foreign_key("deployment_changes.id", nullable=True, ondelete="CASCADE"),
    )
    revision: int
    passed: bool
    # [{"name", "passed", "answers": [{"attempt", "status", "passed", "detail"}]}]
    checks: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    started_at: datetime = Field(sa_column=timestamp_column())
    finished_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())


class OutboxMessage(SQLModel, table=True):
    """A message written in the same transaction as the change it announces; the relay
    publishes it after the commit, so a broker that is down delays it but never loses it."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_unpublished", "published_at", "id"),)

    id: str = Field(default_factory=lambda: new_id("msg"), primary_key=True, max_length=40)
    # "command" (to promenade.commands) or "event" (to promenade.events).
    exchange: str = Field(max_length=16)
    routing_key: str = Field(max_length=255)
    body: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=timestamp_column())
    published_at: datetime | None = Field(default=None, sa_column=timestamp_column(nullable=True))
