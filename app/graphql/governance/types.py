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


@strawberry.input
class ApprovalPolicyInput:
    environment_id: strawberry.ID
    required_approvals: int
    approver_roles: list[Role] = strawberry.field(
        default_factory=lambda: [Role.ADMIN, Role.APPROVER]
    )
    approver_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    allow_self_approval: bool = False
    expires_after_hours: int | None = None
