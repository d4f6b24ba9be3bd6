"""The object types of the contract. Each is a snapshot of a row plus resolvers that reach
related rows through the request's DataLoaders."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from sqlmodel import SQLModel, col, select
from strawberry.dataloader import DataLoader
from strawberry.scalars import JSON

from app import models
from app.graphql.context import Info
from app.graphql.pagination import Connection, Page, PageKey, decode_cursor, page_size
from app.graphql.public_error import PublicError
from app.models import (
    DeploymentStatus,
    PromotionStatus,
    RequestKind,
    ReviewDecision,
    RevisionCause,
    Role,
    RuntimeKind,
)
from app.services import approvals
from app.services.configuration import (
    ConfigChangeKind,
    ConfigDiff,
    ConfigType,
    missing_keys,
    schema_of,
)
from app.services.configuration import ConfigKey as ConfigKeyRecord
from app.services.errors import DomainError
from app.services.logs import deployment_logs
from app.services.promotions import sealed_entries

M = TypeVar("M", bound=SQLModel)
T = TypeVar("T")

for _enum in (
    Role,
    RuntimeKind,
    DeploymentStatus,
    ConfigType,
    PromotionStatus,
    RevisionCause,
    ReviewDecision,
    ConfigChangeKind,
):
    strawberry.enum(_enum)


async def related(
    loader: DataLoader[str, M | None], object_id: str, convert: Callable[[M], T]
) -> T:
    """The row a foreign key points to (the database guarantees it exists), converted."""
    row = await loader.load(object_id)
    if row is None:
        raise LookupError(f"dangling reference {object_id}")
    return convert(row)


@strawberry.interface
class Node:
    id: strawberry.ID


# ---- identity ---------------------------------------------------------------------------


@strawberry.type
class User(Node):
    name: str
    email: str

    @classmethod
    def from_model(cls, row: models.User) -> User:
        return cls(id=strawberry.ID(row.id), name=row.name, email=row.email)


@strawberry.type
class ApiToken(Node):
    name: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def from_model(cls, row: models.ApiToken) -> ApiToken:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
        )


@strawberry.type
class NewApiToken:
    token: str = strawberry.field(description="The secret bearer token. It is never shown again.")
    api_token: ApiToken


@strawberry.type
class Membership:
    role: Role
    user_id: strawberry.Private[str]

    @strawberry.field
    async def user(self, info: Info) -> User:
        return User.from_model(
            await info.context.loaders.require(info.context.loaders.user, self.user_id)
        )

    @classmethod
    def from_model(cls, row: models.Membership) -> Membership:
        return cls(role=row.role, user_id=row.user_id)


@strawberry.type
class OrganizationMembership:
    role: Role
    organization_id: strawberry.Private[str]

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await related(
            info.context.loaders.organization, self.organization_id, Organization.from_model
        )


@strawberry.type
class Viewer:
    @strawberry.field
    def user(self, info: Info) -> User:
        return User.from_model(info.context.viewer)

    @strawberry.field
    async def memberships(self, info: Info) -> list[OrganizationMembership]:
        rows = await info.context.loaders.memberships_by_user.load(info.context.viewer.id)
        return [
            OrganizationMembership(role=m.role, organization_id=m.organization_id) for m in rows
        ]

    @strawberry.field
    async def api_tokens(self, info: Info) -> list[ApiToken]:
        rows = (
            await info.context.session.exec(
                select(models.ApiToken)
                .where(models.ApiToken.user_id == info.context.viewer.id)
                .order_by(col(models.ApiToken.id))
            )
        ).all()
        return [ApiToken.from_model(row) for row in rows]


@strawberry.type
class Organization(Node):
    slug: str
    name: str

    @classmethod
    def from_model(cls, row: models.Organization) -> Organization:
        return cls(id=strawberry.ID(row.id), slug=row.slug, name=row.name)

    @strawberry.field(
        description="All environments of the organization, in their display order (position)."
    )
    async def environments(self, info: Info) -> list[Environment]:
        rows = await info.context.loaders.environments_by_organization.load(self.id)
        return [Environment.from_model(row) for row in rows]

    @strawberry.field
    async def data_planes(self, info: Info) -> list[DataPlane]:
        rows = await info.context.loaders.data_planes_by_organization.load(self.id)
        return [DataPlane.from_model(row) for row in rows]

    @strawberry.field
    async def pipelines(self, info: Info) -> list[DeploymentPipeline]:
        rows = await info.context.loaders.pipelines_by_organization.load(self.id)
        return [DeploymentPipeline.from_model(row) for row in rows]

    @strawberry.field(description="Oldest first.")
    async def projects(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Project]:
        page = await info.context.loaders.projects_page.load(
            PageKey(self.id, page_size(first), decode_cursor(after))
        )
        return page.connection(Project.from_model)

    @strawberry.field(
        description="Promotion requests that wait for a review by the viewer (or by anyone, for "
        "ADMIN), oldest first."
    )
    async def pending_approvals(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Promotion]:
        # Three reads whatever the number of requests (and of organizations in one query):
        # the pending requests, their reviews, the viewer's memberships. Paged after the
        # reviewer rules (kept in each request) are applied; one integration has at most one
        # pending request per environment, so the pending set stays small.
        ctx = info.context
        size, cursor = page_size(first), decode_cursor(after)
        pending = await ctx.loaders.pending_promotions_by_organization.load(self.id)
        reviews = await ctx.loaders.reviews_by_promotion.load_many([row.id for row in pending])
        role = await ctx.role_in(self.id)
        rows = [
            row
            for row, reviewed in zip(pending, reviews, strict=True)
            if approvals.awaits_review(
                row,
                user_id=ctx.viewer.id,
                role=role,
                reviewer_ids={review.reviewer_id for review in reviewed},
            )
        ]
        after_cursor = [row for row in rows if cursor is None or row.id > cursor]
        page = Page(
            rows=after_cursor[:size],
            has_next_page=len(after_cursor) > size,
            total_count=len(rows),
        )
        return page.connection(Promotion.from_model)

    @strawberry.field(description="Newest first. Visible to ADMIN.")
    async def audit_log(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[AuditEvent]:
        if await info.context.role_in(self.id) is not Role.ADMIN:
            raise PublicError("the audit log is visible to ADMIN", code="FORBIDDEN")
        page = await info.context.loaders.audit_page.load(
            PageKey(self.id, page_size(first), decode_cursor(after))
        )
        return page.connection(AuditEvent.from_model)

    @strawberry.field
    async def members(self, info: Info) -> list[Membership]:
        rows = await info.context.loaders.memberships_by_organization.load(self.id)
        return [Membership.from_model(row) for row in rows]


# ---- environments -----------------------------------------------------------------------


@strawberry.type
class DataPlane(Node):
    name: str
    runtime: RuntimeKind

    @classmethod
    def from_model(cls, row: models.DataPlane) -> DataPlane:
        return cls(id=strawberry.ID(row.id), name=row.name, runtime=row.runtime)

    @strawberry.field
    async def environments(self, info: Info) -> list[Environment]:
        rows = await info.context.loaders.environments_by_data_plane.load(self.id)
        return [Environment.from_model(row) for row in rows]


@strawberry.type(
    description="Promotions into the environment need reviews. Changing a policy applies to new "
    "requests; pending ones keep the rule they were filed under."
)
class ApprovalPolicy:
    required_approvals: int
    approver_roles: list[Role] = strawberry.field(
        description="Members with one of these roles may review."
    )
    allow_self_approval: bool
    expires_after_hours: int | None = strawberry.field(
        description="A request with no decision after this many hours becomes EXPIRED. Null: never."
    )
    approver_ids: strawberry.Private[list[str]]

    @classmethod
    def from_model(cls, row: models.ApprovalPolicy) -> ApprovalPolicy:
        return cls(
            required_approvals=row.required_approvals,
            approver_roles=[Role(role) for role in row.approver_roles],
            allow_self_approval=row.allow_self_approval,
            expires_after_hours=row.expires_after_hours,
            approver_ids=list(row.approver_ids),
        )

    @strawberry.field(description="Individually named reviewers, in addition to the roles.")
    async def approvers(self, info: Info) -> list[User]:
        rows = await info.context.loaders.user.load_many(self.approver_ids)
        return [User.from_model(row) for row in rows if row is not None]


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
    created_at: datetime
    organization_id: strawberry.Private[str]
    data_plane_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.Environment) -> Environment:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            description=row.description,
            dns_prefix=row.dns_prefix,
            critical=row.critical,
            position=row.position,
            frozen=row.frozen,
            freeze_reason=row.freeze_reason,
            created_at=row.created_at,
            organization_id=row.organization_id,
            data_plane_id=row.data_plane_id,
        )

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await related(
            info.context.loaders.organization, self.organization_id, Organization.from_model
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
    ) -> Connection[Deployment]:
        page = await info.context.loaders.deployments_page.load(
            PageKey(self.id, page_size(first), decode_cursor(after))
        )
        return page.connection(Deployment.from_model)


# ---- pipelines and projects ---------------------------------------------------------------


@strawberry.type(name="DeploymentPipeline")
class DeploymentPipeline(Node):
    name: str
    is_default: bool

    @classmethod
    def from_model(cls, row: models.Pipeline) -> DeploymentPipeline:
        return cls(id=strawberry.ID(row.id), name=row.name, is_default=row.is_default)

    @strawberry.field(description="The promotion hierarchy: environments in promotion order.")
    async def environments(self, info: Info) -> list[Environment]:
        loaders = info.context.loaders
        stages = await loaders.stages_by_pipeline.load(self.id)
        rows = await loaders.environment.load_many([s.environment_id for s in stages])
        return [Environment.from_model(row) for row in rows if row is not None]

    @strawberry.field
    async def projects(self, info: Info) -> list[Project]:
        rows = await info.context.loaders.projects_by_pipeline.load(self.id)
        return [Project.from_model(row) for row in rows]


@strawberry.type
class Project(Node):
    name: str
    slug: str
    description: str | None
    created_at: datetime
    organization_id: strawberry.Private[str]
    pipeline_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.Project) -> Project:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            slug=row.slug,
            description=row.description,
            created_at=row.created_at,
            organization_id=row.organization_id,
            pipeline_id=row.pipeline_id,
        )

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        return await related(
            info.context.loaders.organization, self.organization_id, Organization.from_model
        )

    @strawberry.field
    async def pipeline(self, info: Info) -> DeploymentPipeline:
        return await related(
            info.context.loaders.pipeline, self.pipeline_id, DeploymentPipeline.from_model
        )

    @strawberry.field(description="Oldest first.")
    async def integrations(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Integration]:
        page = await info.context.loaders.integrations_page.load(
            PageKey(self.id, page_size(first), decode_cursor(after))
        )
        return page.connection(Integration.from_model)


@strawberry.type(
    description="A configurable the integration declares: every environment must "
    "give it a value unless it has a default."
)
class ConfigKey:
    key: str
    type: ConfigType
    required: bool
    secret: bool
    default_value: str | None
    description: str | None

    @classmethod
    def from_record(cls, record: ConfigKeyRecord) -> ConfigKey:
        return cls(
            key=record.key,
            type=record.type,
            required=record.required,
            secret=record.secret,
            default_value=record.default_value,
            description=record.description,
        )


@strawberry.type
class Integration(Node):
    name: str
    slug: str
    description: str | None
    created_at: datetime
    project_id: strawberry.Private[str]
    organization_id: strawberry.Private[str]
    schema: strawberry.Private[list[dict[str, Any]]]

    @classmethod
    def from_model(cls, row: models.Integration) -> Integration:
        return cls(
            id=strawberry.ID(row.id),
            name=row.name,
            slug=row.slug,
            description=row.description,
            created_at=row.created_at,
            project_id=row.project_id,
            organization_id=row.organization_id,
            schema=row.config_schema,
        )

    @strawberry.field
    async def project(self, info: Info) -> Project:
        return await related(info.context.loaders.project, self.project_id, Project.from_model)

    @strawberry.field
    def config_schema(self) -> list[ConfigKey]:
        return [ConfigKey.from_record(ConfigKeyRecord.from_json(entry)) for entry in self.schema]

    @strawberry.field(description="Newest first.")
    async def builds(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Build]:
        page = await info.context.loaders.builds_page.load(
            PageKey(self.id, page_size(first, 20), decode_cursor(after))
        )
        return page.connection(Build.from_model)

    async def _pipeline_deployments(self, info: Info) -> list[models.Deployment]:
        loaders = info.context.loaders
        project = await loaders.require(loaders.project, self.project_id)
        stages = await loaders.stages_by_pipeline.load(project.pipeline_id)
        by_environment = {
            d.environment_id: d for d in await loaders.deployments_by_integration.load(self.id)
        }
        return [
            by_environment[s.environment_id] for s in stages if s.environment_id in by_environment
        ]

    @strawberry.field(description="Newest first; optionally only those with these statuses.")
    async def promotions(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: list[PromotionStatus] | None = None,
    ) -> Connection[Promotion]:
        only = tuple(sorted(s.value for s in status)) if status else ()
        page = await info.context.loaders.promotions_page.load(
            PageKey(self.id, page_size(first, 20), decode_cursor(after), only)
        )
        return page.connection(Promotion.from_model)

    @strawberry.field(
        description="One entry per environment of the project's pipeline, in "
        "promotion order, NOT_DEPLOYED ones included."
    )
    async def deployments(self, info: Info) -> list[Deployment]:
        return [Deployment.from_model(row) for row in await self._pipeline_deployments(info)]

    @strawberry.field
    async def deployment(self, info: Info, environment_id: strawberry.ID) -> Deployment | None:
        for row in await self._pipeline_deployments(info):
            if row.environment_id == environment_id:
                return Deployment.from_model(row)
        return None


@strawberry.type(
    description="An immutable, runnable artifact. The same build moves unchanged "
    "from environment to environment."
)
class Build(Node):
    version: str
    artifact: str = strawberry.field(
        description="What the runtime runs: a container image "
        "reference, or a command line for LOCAL_PROCESS."
    )
    commit: str | None
    created_at: datetime
    integration_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.Build) -> Build:
        return cls(
            id=strawberry.ID(row.id),
            version=row.version,
            artifact=row.artifact,
            commit=row.commit,
            created_at=row.created_at,
            integration_id=row.integration_id,
        )

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return await related(
            info.context.loaders.integration, self.integration_id, Integration.from_model
        )


# ---- deployments and configuration ----------------------------------------------------------


@strawberry.type
class ConfigValue:
    key: str
    value: str | None = strawberry.field(description="Null for a secret: secrets are write-only.")
    secret: bool
    updated_at: datetime


@strawberry.type
class Deployment(Node):
    status: DeploymentStatus
    revision: int = strawberry.field(
        description="Increases by one with every applied change "
        "(new build, new configuration, rollback)."
    )
    endpoint_url: str | None = strawberry.field(
        description="Reachable URL of the integration in this environment; null while not ACTIVE."
    )
    restart_required: bool = strawberry.field(
        description="True when the configuration was changed "
        "after the last restart: it takes effect "
        "on the next restart."
    )
    updated_at: datetime
    integration_id: strawberry.Private[str]
    environment_id: strawberry.Private[str]
    build_id: strawberry.Private[str | None]
    organization_id: strawberry.Private[str]
    last_error_text: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.Deployment) -> Deployment:
        return cls(
            id=strawberry.ID(row.id),
            status=row.status,
            revision=row.revision,
            endpoint_url=row.endpoint_url if row.status is DeploymentStatus.ACTIVE else None,
            last_error_text=row.last_error,
            organization_id=row.organization_id,
            restart_required=(
                row.status is not DeploymentStatus.NOT_DEPLOYED
                and row.config_version != row.applied_config_version
            ),
            updated_at=row.updated_at,
            integration_id=row.integration_id,
            environment_id=row.environment_id,
            build_id=row.build_id,
        )

    @strawberry.field(
        description="Why the last change failed: health-check output, exit code, the "
        "runtime's message (the instance's output for DEVELOPER and ADMIN only)."
    )
    async def last_error(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.organization_id, self.last_error_text)

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return await related(
            info.context.loaders.integration, self.integration_id, Integration.from_model
        )

    @strawberry.field
    async def environment(self, info: Info) -> Environment:
        return await related(
            info.context.loaders.environment, self.environment_id, Environment.from_model
        )

    @strawberry.field(description="The build running now; null while NOT_DEPLOYED.")
    async def build(self, info: Info) -> Build | None:
        if self.build_id is None:
            return None
        row = await info.context.loaders.build.load(self.build_id)
        return Build.from_model(row) if row else None

    @strawberry.field(
        description="The configuration set for this environment (what the next restart applies)."
    )
    async def configuration(self, info: Info) -> list[ConfigValue]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.integration_id)
        order = {key: index for index, key in enumerate(schema_of(integration))}
        values = await loaders.config_values_by_deployment.load(self.id)
        return [
            ConfigValue(
                key=v.key,
                value=None if v.secret else v.value,
                secret=v.secret,
                updated_at=v.updated_at,
            )
            for v in sorted(values, key=lambda v: order.get(v.key, len(order)))
        ]

    @strawberry.field(
        description="The last lines of the running instances' output, newest last, read from "
        "the data plane (DEVELOPER and ADMIN; secret values masked)."
    )
    async def logs(self, info: Info, lines: int | None = 100) -> list[str]:
        context = info.context
        deployment = await context.loaders.require(context.loaders.deployment, self.id)
        try:
            return await deployment_logs(
                context.session,
                actor=context.viewer,
                bus=context.bus,
                deployment=deployment,
                lines=100 if lines is None else lines,
            )
        except DomainError as error:
            raise PublicError(error.message, code=error.code) from None

    @strawberry.field(description="Applied revisions, newest first.")
    async def history(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[DeploymentRevision]:
        page = await info.context.loaders.revisions_page.load(
            PageKey(self.id, page_size(first, 20), decode_cursor(after))
        )
        return page.connection(DeploymentRevision.from_model)

    @strawberry.field(
        description="Required keys of the integration's configSchema that this "
        "environment has no value for."
    )
    async def missing_configuration(self, info: Info) -> list[str]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.integration_id)
        values = await loaders.config_values_by_deployment.load(self.id)
        return missing_keys(schema_of(integration), (v.key for v in values))


@strawberry.type
class DeploymentRevision:
    revision: int
    configuration_digest: str = strawberry.field(
        description="Hash of the configuration snapshot applied with this revision (values "
        "themselves are not exposed)."
    )
    cause: RevisionCause
    created_at: datetime
    build_id: strawberry.Private[str]
    promotion_id: strawberry.Private[str | None]
    actor_id: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.DeploymentRevision) -> DeploymentRevision:
        return cls(
            revision=row.revision,
            configuration_digest=row.configuration_digest,
            cause=row.cause,
            created_at=row.created_at,
            build_id=row.build_id,
            promotion_id=row.promotion_id,
            actor_id=row.actor_id,
        )

    @strawberry.field
    async def build(self, info: Info) -> Build:
        return await related(info.context.loaders.build, self.build_id, Build.from_model)

    @strawberry.field
    async def promotion(self, info: Info) -> Promotion | None:
        if self.promotion_id is None:
            return None
        row = await info.context.loaders.promotion.load(self.promotion_id)
        return Promotion.from_model(row) if row else None

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.user.load(self.actor_id)
        return User.from_model(row) if row else None


@strawberry.type
class Review:
    decision: ReviewDecision
    comment: str | None
    created_at: datetime
    reviewer_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.Review) -> Review:
        return cls(
            decision=row.decision,
            comment=row.comment,
            created_at=row.created_at,
            reviewer_id=row.reviewer_id,
        )

    @strawberry.field
    async def reviewer(self, info: Info) -> User:
        return await related(info.context.loaders.user, self.reviewer_id, User.from_model)


@strawberry.type
class ConfigChange:
    key: str
    secret: bool
    before: str | None = strawberry.field(
        description="Null for secrets and for keys that had no value."
    )
    after: str | None = strawberry.field(description="Null for secrets and for removed keys.")
    kind: ConfigChangeKind

    @classmethod
    def from_diff(cls, diff: ConfigDiff) -> ConfigChange:
        return cls(
            key=diff.key,
            secret=diff.secret,
            before=diff.before,
            after=diff.after,
            kind=diff.kind,
        )


strawberry.enum(
    RequestKind,
    description="What a request asks for: a promotion, or (in an environment with an approval "
    "policy) a deploy, a configuration change, a restart that applies new values, a rollback.",
)


@strawberry.type
class PromotionEvent:
    promotion_id: strawberry.ID
    status: PromotionStatus
    at: datetime
    organization_id: strawberry.Private[str]
    detail_text: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.PromotionEvent, organization_id: str) -> PromotionEvent:
        return cls(
            promotion_id=strawberry.ID(row.promotion_id),
            status=row.status,
            detail_text=row.detail,
            at=row.at,
            organization_id=organization_id,
        )

    @strawberry.field
    async def detail(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.organization_id, self.detail_text)


@strawberry.type
class Promotion(Node):
    status: PromotionStatus
    message: str | None
    requested_at: datetime
    required_approvals: int
    finished_at: datetime | None
    row: strawberry.Private[models.Promotion]

    @classmethod
    def from_model(cls, row: models.Promotion) -> Promotion:
        return cls(
            id=strawberry.ID(row.id),
            status=row.status,
            message=row.message,
            requested_at=row.requested_at,
            required_approvals=row.required_approvals,
            finished_at=row.finished_at,
            row=row,
        )

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return await related(
            info.context.loaders.integration, self.row.integration_id, Integration.from_model
        )

    @strawberry.field
    async def build(self, info: Info) -> Build:
        return await related(info.context.loaders.build, self.row.build_id, Build.from_model)

    @strawberry.field
    async def source_environment(self, info: Info) -> Environment:
        return await related(
            info.context.loaders.environment, self.row.source_environment_id, Environment.from_model
        )

    @strawberry.field
    async def target_environment(self, info: Info) -> Environment:
        return await related(
            info.context.loaders.environment, self.row.target_environment_id, Environment.from_model
        )

    @strawberry.field
    async def requested_by(self, info: Info) -> User:
        return await related(info.context.loaders.user, self.row.requested_by_id, User.from_model)

    @strawberry.field(
        description="The overrides given with the request (secret values masked as null)."
    )
    async def overrides(self, info: Info) -> list[ConfigValue]:
        loaders = info.context.loaders
        integration = await loaders.require(loaders.integration, self.row.integration_id)
        schema = schema_of(integration)
        overrides, _ = sealed_entries(info.context.box, self.row)
        return [
            ConfigValue(
                key=entry.key,
                value=None if entry.key in schema and schema[entry.key].secret else entry.value,
                secret=entry.key in schema and schema[entry.key].secret,
                updated_at=self.row.requested_at,
            )
            for entry in overrides
        ]

    @strawberry.field
    async def reviews(self, info: Info) -> list[Review]:
        rows = await info.context.loaders.reviews_by_promotion.load(self.id)
        return [Review.from_model(row) for row in rows]

    @strawberry.field(description="Every status change, oldest first.")
    async def events(self, info: Info) -> list[PromotionEvent]:
        rows = await info.context.loaders.promotion_events_by_promotion.load(self.id)
        return [PromotionEvent.from_model(row, self.row.organization_id) for row in rows]

    @strawberry.field
    async def error(self, info: Info) -> str | None:
        return await info.context.output_for_viewer(self.row.organization_id, self.row.error)

    @strawberry.field(description="What the request asks for.")
    def kind(self) -> RequestKind:
        return self.row.kind

    @strawberry.field(
        description="The plan filed with the request: how the configuration the target runs "
        "changes (secret values never shown)."
    )
    def configuration_changes(self, info: Info) -> list[ConfigChange]:
        return [
            ConfigChange.from_diff(change)
            for change in approvals.requested_changes(info.context.box, self.row)
        ]

    @strawberry.field(description="A rollback request: the revision it re-applies.")
    def rollback_to_revision(self) -> int | None:
        return self.row.rollback_to_revision


@strawberry.type
class AuditEvent(Node):
    action: str
    subject_id: strawberry.ID
    detail: JSON | None
    at: datetime
    actor_id: strawberry.Private[str | None]

    @classmethod
    def from_model(cls, row: models.AuditEvent) -> AuditEvent:
        return cls(
            id=strawberry.ID(row.id),
            action=row.action,
            subject_id=strawberry.ID(row.subject_id),
            detail=JSON(row.detail),
            at=row.at,
            actor_id=row.actor_id,
        )

    @strawberry.field
    async def actor(self, info: Info) -> User | None:
        if self.actor_id is None:
            return None
        row = await info.context.loaders.user.load(self.actor_id)
        return User.from_model(row) if row else None


@strawberry.type
class Deleted:
    id: strawberry.ID
