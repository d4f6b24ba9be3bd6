"""Environments, their data planes and approval policies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app import models
from app.graphql.context import Info
from app.graphql.deployments import LazyDeployment
from app.graphql.deployments import types as deployment_types
from app.graphql.governance import LazyApprovalRule, rules
from app.graphql.identity import LazyUser
from app.graphql.objects import Node, related, snapshot
from app.graphql.organizations import LazyOrganization
from app.graphql.organizations import types as organization_types
from app.graphql.pagination import Connection, page_key
from app.models import Role, RuntimeKind
from app.services import approval_rules


@strawberry.type
class DataPlane(Node):
    name: str
    runtime: RuntimeKind

    @classmethod
    def from_model(cls, row: models.DataPlane) -> DataPlane:
        return snapshot(cls, row)

    @strawberry.field
    async def environments(self, info: Info) -> list[Environment]:
        rows = await info.context.loaders.environments_by_data_plane.load(self.id)
        return [Environment.from_model(row) for row in rows]


@strawberry.type(
    description="Promotions into the environment need reviews. Changing a policy applies to new "
    "requests; pending ones keep the rules they were filed under."
)
class ApprovalPolicy:
    required_approvals: int = strawberry.field(
        description="The approvals the rules add up to (with one rule, its count)."
    )
    approver_roles: list[Role] = strawberry.field(
        description="Members with one of these roles may review (every rule's roles together)."
    )
    allow_self_approval: bool
    expires_after_hours: int | None = strawberry.field(
        description="A request with no decision after this many hours becomes EXPIRED. Null: never."
    )
    approver_ids: strawberry.Private[list[str]]
    row: strawberry.Private[models.ApprovalPolicy]

    @classmethod
    def from_model(cls, row: models.ApprovalPolicy) -> ApprovalPolicy:
        return snapshot(
            cls,
            row,
            approver_roles=[Role(role) for role in row.approver_roles],
            approver_ids=list(row.approver_ids),
            row=row,
        )

    @strawberry.field(
        description="Individually named reviewers, in addition to the roles (every rule's)."
    )
    async def approvers(self, info: Info) -> list[LazyUser]:
        return await rules.users(info, self.approver_ids)

    @strawberry.field(
        description="Every one must be met; an approval counts toward each rule its reviewer "
        "satisfies. A policy set with requiredApprovals has one rule."
    )
    def rules(self) -> list[LazyApprovalRule]:
        return [
            rules.ApprovalRule.from_rule(rule)
            for rule in approval_rules.rules_of_policy(self.row).rules
        ]


@strawberry.type(
    description="When promotions may start in an environment: on these days, from start to "
    "end, wall-clock time in the time zone (an end at or before the start: the next day)."
)
class DeploymentWindow:
    days: list[int] = strawberry.field(description="ISO weekdays: 1 Monday .. 7 Sunday.")
    start: str = strawberry.field(description="HH:MM")
    end: str = strawberry.field(description="HH:MM")
    time_zone: str = strawberry.field(description="An IANA time zone, such as Europe/Berlin.")


@strawberry.input
class DeploymentWindowInput:
    days: list[int] = strawberry.field(description="ISO weekdays: 1 Monday .. 7 Sunday.")
    start: str = strawberry.field(description="HH:MM")
    end: str = strawberry.field(description="HH:MM; at or before start: the next day.")
    time_zone: str = strawberry.field(description="An IANA time zone, such as Europe/Berlin.")


@strawberry.input
class SetDeploymentWindowsInput:
    environment_id: strawberry.ID
    windows: list[DeploymentWindowInput] = strawberry.field(
        description="Empty: promotions may start at any time."
    )


@strawberry.type
class Environment(Node):
    name: str
    description: str | None
    dns_prefix: str = strawberry.field(
        description="DNS label used to build endpoint URLs of integrations in this environment."
    )
    critical: bool = strawberry.field(
        description="A production environment. Several may exist (one per region, say)."
    )
    position: int
    frozen: bool
    freeze_reason: str | None
    required_soak_seconds: int | None = strawberry.field(
        description="How long a build must have run healthy in the environment before this "
        "one in the pipeline (ACTIVE, and verified where there are checks) before it is "
        "promoted here."
    )
    emergency_allowed: bool = strawberry.field(
        description="Whether an ADMIN may promote here past a freeze or the approval policy "
        "(PromoteInput.emergency)."
    )
    created_at: datetime
    organization_id: strawberry.Private[str]
    data_plane_id: strawberry.Private[str]
    deployment_windows_json: strawberry.Private[list[dict[str, Any]] | None]

    @classmethod
    def from_model(cls, row: models.Environment) -> Environment:
        return snapshot(cls, row, deployment_windows_json=row.deployment_windows)

    @strawberry.field(
        description="When promotions may start here; empty: at any time. Outside them a "
        "promotion is SCHEDULED for the next window start."
    )
    def deployment_windows(self) -> list[DeploymentWindow]:
        return [
            DeploymentWindow(
                days=w["days"], start=w["start"], end=w["end"], time_zone=w["timeZone"]
            )
            for w in self.deployment_windows_json or []
        ]

    @strawberry.field
    async def organization(self, info: Info) -> LazyOrganization:
        return await related(
            info.context.loaders.organization,
            self.organization_id,
            organization_types.Organization.from_model,
        )

    @strawberry.field(description="Null when promotions into this environment need no review.")
    async def approval_policy(self, info: Info) -> ApprovalPolicy | None:
        rows = await info.context.loaders.approval_policies_by_environment.load(self.id)
        return ApprovalPolicy.from_model(rows[0]) if rows else None

    @strawberry.field
    async def data_plane(self, info: Info) -> DataPlane:
        return await related(
            info.context.loaders.data_plane, self.data_plane_id, DataPlane.from_model
        )

    @strawberry.field(
        description="Deployments that run something here (NOT_DEPLOYED ones are "
        "left out), oldest first."
    )
    async def deployments(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[LazyDeployment]:
        page = await info.context.loaders.deployments_page.load(
            page_key(info, self.id, first, after)
        )
        return page.connection(deployment_types.Deployment.from_model)


@strawberry.input
class CreateDataPlaneInput:
    organization_id: strawberry.ID
    name: str
    runtime: RuntimeKind
    settings: JSON | None = strawberry.field(
        default=None,
        description="Runtime settings: for KUBERNETES the kubeconfig context, "
        "namespaceTemplate, ingressClass, hostSuffix and the instances' limits; for CONTAINER "
        "the engine and the instances' limits; for LOCAL_PROCESS the host that endpoint URLs "
        "use.",
    )


@strawberry.input
class CreateEnvironmentInput:
    organization_id: strawberry.ID
    name: str
    dns_prefix: str
    description: str | None = None
    critical: bool | None = False
    data_plane_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the organization's default data plane."
    )
    position: int | None = strawberry.field(default=None, description="Defaults to last.")


@strawberry.input
class UpdateEnvironmentInput:
    id: strawberry.ID
    name: str | None = None
    description: str | None = None
    critical: bool | None = None
    emergency_allowed: bool | None = strawberry.field(
        default=None, description="Allow or forbid emergency promotions into the environment."
    )
    required_soak_seconds: int | None = strawberry.field(
        default=None,
        description="The soak time promotions into the environment require (0 removes it).",
    )
