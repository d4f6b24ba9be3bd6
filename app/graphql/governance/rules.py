"""The rules of approval policies, and a request's progress under each."""

from __future__ import annotations

from collections.abc import Sequence

import strawberry

from app.graphql.context import Info
from app.graphql.identity import LazyUser
from app.graphql.identity import types as identity_types
from app.models import Role
from app.services import approval_rules


@strawberry.type(description="Members who may review, and how many of them must approve.")
class ApprovalRule:
    name: str
    required_approvals: int
    approver_roles: list[Role] = strawberry.field(
        description="Members with one of these roles satisfy the rule."
    )
    approver_ids: strawberry.Private[tuple[str, ...]]

    @classmethod
    def from_rule(cls, rule: approval_rules.ApprovalRule) -> ApprovalRule:
        return cls(
            name=rule.name,
            required_approvals=rule.required_approvals,
            approver_roles=[Role(role) for role in rule.roles],
            approver_ids=rule.approver_ids,
        )

    @strawberry.field(description="Individually named reviewers who satisfy the rule.")
    async def approvers(self, info: Info) -> list[LazyUser]:
        return await users(info, self.approver_ids)


async def users(info: Info, ids: Sequence[str]) -> list[LazyUser]:
    rows = await info.context.loaders.user.load_many(list(ids))
    return [identity_types.User.from_model(row) for row in rows if row is not None]


@strawberry.type(
    description="One of the rules a request was filed under, and the approvals that count "
    "toward it so far."
)
class ApprovalRuleProgress:
    rule: ApprovalRule
    approvals: int
    met: bool = strawberry.field(description="The rule has its required approvals.")
    approver_ids: strawberry.Private[tuple[str, ...]]

    @classmethod
    def from_progress(cls, progress: approval_rules.RuleProgress) -> ApprovalRuleProgress:
        return cls(
            rule=ApprovalRule.from_rule(progress.rule),
            approvals=progress.approvals,
            met=progress.met,
            approver_ids=progress.approver_ids,
        )

    @strawberry.field(description="Who approved toward the rule, in the order they did.")
    async def approved_by(self, info: Info) -> list[LazyUser]:
        return await users(info, self.approver_ids)
