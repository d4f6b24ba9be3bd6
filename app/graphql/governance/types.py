"""The audit log."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.context import Info
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.graphql.objects import Node, snapshot
from app.models import Role


@strawberry.type
class AuditEvent(Node):
    action: str
    subject_id: strawberry.ID
    detail: JSON | None
    at: datetime
    actor_id: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.AuditEvent) -> AuditEvent:
        return snapshot(cls, row, subject_id=strawberry.ID(row.subject_id), detail=JSON(row.detail))

    @strawberry.field
    async def actor(self, info: Info) -> LazyUser | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.user.load(self.actor_id)
        return identity_types.User.from_model(row) if row else None


@strawberry.input(
    description="Members who may review, and how many of them must approve (1 to 20). A rule "
    "with only named reviewers names at least as many as it requires."
)
class ApprovalRuleInput:
    name: str = strawberry.field(description="1 to 100 characters, unique in the policy.")
    required_approvals: int
    approver_roles: list[Role] = strawberry.field(default_factory=list)
    approver_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.input(
    description="One rule (requiredApprovals from approverRoles and approverIds), or with "
    "rules several (1 to 10), every one of which must be met."
)
class ApprovalPolicyInput:
    environment_id: strawberry.ID
    required_approvals: int | None = strawberry.field(
        default=None, description="The one rule's count; null when rules are given."
    )
    approver_roles: list[Role] = strawberry.field(
        default_factory=lambda: [Role.ADMIN, Role.APPROVER],
        description="The one rule's reviewer roles; not used with rules.",
    )
    approver_ids: list[strawberry.ID] = strawberry.field(
        default_factory=list, description="The one rule's named reviewers; empty with rules."
    )
    allow_self_approval: bool = False
    expires_after_hours: int | None = None
    rules: list[ApprovalRuleInput] | None = strawberry.field(
        default=None,
        description='Several rules, all of which must be met ("1 from QA and 2 from '
        'Operators"); an approval counts toward every rule its reviewer satisfies.',
    )
