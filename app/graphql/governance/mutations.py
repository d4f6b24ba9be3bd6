"""Approval policies, freezes and the reviews of requests."""

from __future__ import annotations

import strawberry

from app.graphql.context import Info
from app.graphql.environments.mutations import EnvironmentResult
from app.graphql.environments.types import Environment, SetDeploymentWindowsInput
from app.graphql.errors import in_change_transaction, in_transaction
from app.graphql.governance.types import ApprovalPolicyInput
from app.graphql.promotions.mutations import PromotionResult
from app.graphql.promotions.types import Promotion
from app.services import approval_policies, approvals, environments


@strawberry.type
class GovernanceMutations:
    @strawberry.mutation(
        description="ADMIN only. Changing a policy applies to new requests; pending ones keep "
        "the rules they were filed under."
    )
    @in_transaction
    async def set_approval_policy(
        self, info: Info, input: ApprovalPolicyInput
    ) -> EnvironmentResult:
        ctx = info.context
        policy = approval_policies.PolicyInput(
            environment_id=input.environment_id,
            required_approvals=input.required_approvals,
            approver_roles=input.approver_roles,
            approver_ids=[str(i) for i in input.approver_ids],
            allow_self_approval=input.allow_self_approval,
            expires_after_hours=input.expires_after_hours,
            rules=None
            if input.rules is None
            else [
                approval_policies.RuleInput(
                    name=rule.name,
                    required_approvals=rule.required_approvals,
                    approver_roles=rule.approver_roles,
                    approver_ids=[str(i) for i in rule.approver_ids],
                )
                for rule in input.rules
            ],
        )
        return Environment.from_model(
            await approval_policies.set_approval_policy(
                ctx.session, actor=ctx.viewer, policy=policy
            )
        )

    @strawberry.mutation(description="ADMIN only. Pending requests keep their rule.")
    @in_transaction
    async def remove_approval_policy(
        self, info: Info, environment_id: strawberry.ID
    ) -> EnvironmentResult:
        ctx = info.context
        return Environment.from_model(
            await approval_policies.remove_approval_policy(
                ctx.session, actor=ctx.viewer, environment_id=environment_id
            )
        )

    @strawberry.mutation(
        description="ADMIN only. New promotions, deploys, restarts and rollbacks into the "
        "environment are refused (TARGET_FROZEN); queued ones wait; a running one finishes."
    )
    @in_transaction
    async def freeze_environment(
        self, info: Info, id: strawberry.ID, reason: str
    ) -> EnvironmentResult:
        ctx = info.context
        return Environment.from_model(
            await environments.freeze_environment(
                ctx.session, actor=ctx.viewer, environment_id=id, reason=reason
            )
        )

    @strawberry.mutation(
        description="ADMIN only. When promotions may start in the environment: one requested "
        "outside the windows is SCHEDULED for the next window start. An empty list removes "
        "them."
    )
    @in_transaction
    async def set_deployment_windows(
        self, info: Info, input: SetDeploymentWindowsInput
    ) -> EnvironmentResult:
        ctx = info.context
        return Environment.from_model(
            await environments.set_deployment_windows(
                ctx.session,
                actor=ctx.viewer,
                environment_id=input.environment_id,
                windows=[
                    {"days": w.days, "start": w.start, "end": w.end, "timeZone": w.time_zone}
                    for w in input.windows
                ],
            )
        )

    @strawberry.mutation(description="ADMIN only. Queued changes that waited run now.")
    @in_transaction
    async def unfreeze_environment(self, info: Info, id: strawberry.ID) -> EnvironmentResult:
        ctx = info.context
        return Environment.from_model(
            await environments.unfreeze_environment(
                ctx.session, actor=ctx.viewer, environment_id=id
            )
        )

    @strawberry.mutation(
        description="An eligible reviewer approves once; the approval counts toward every rule "
        "the reviewer satisfies, and the one that meets the last rule queues the promotion."
    )
    @in_change_transaction
    async def approve_promotion(
        self, info: Info, id: strawberry.ID, comment: str | None = None
    ) -> PromotionResult:
        ctx = info.context
        return Promotion.from_model(
            await approvals.approve(ctx.session, actor=ctx.viewer, promotion_id=id, comment=comment)
        )

    @strawberry.mutation(description="An eligible reviewer rejects: the request ends REJECTED.")
    @in_change_transaction
    async def reject_promotion(
        self, info: Info, id: strawberry.ID, comment: str | None = None
    ) -> PromotionResult:
        ctx = info.context
        return Promotion.from_model(
            await approvals.reject(ctx.session, actor=ctx.viewer, promotion_id=id, comment=comment)
        )

    @strawberry.mutation(
        description="The requester or an ADMIN, while the promotion is PENDING_APPROVAL or QUEUED."
    )
    @in_change_transaction
    async def cancel_promotion(self, info: Info, id: strawberry.ID) -> PromotionResult:
        ctx = info.context
        return Promotion.from_model(
            await approvals.cancel(ctx.session, actor=ctx.viewer, promotion_id=id)
        )
