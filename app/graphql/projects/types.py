"""Projects, their integrations, configuration schemas and builds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlmodel import col, select

from app import models
from app.graphql.context import Info
from app.graphql.deployments import LazyDeployment
from app.graphql.deployments import types as deployment_types
from app.graphql.groups import LazyConfigurationGroup
from app.graphql.groups import types as group_types
from app.graphql.objects import Node, related, snapshot
from app.graphql.organizations import LazyOrganization
from app.graphql.organizations import types as organization_types
from app.graphql.pagination import Connection, page_key
from app.graphql.pipelines import LazyDeploymentPipeline
from app.graphql.pipelines import types as pipeline_types
from app.graphql.projects.metrics import DeliveryMetrics, project_delivery_metrics
from app.graphql.promotions import LazyPromotion
from app.graphql.promotions import types as promotion_types
from app.models import PromotionStatus
from app.services.configuration import ConfigKey as ConfigKeyRecord
from app.services.configuration import ConfigType


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
        return snapshot(cls, row)

    @strawberry.field
    async def organization(self, info: Info) -> LazyOrganization:
        return await related(
            info.context.loaders.organization,
            self.organization_id,
            organization_types.Organization.from_model,
        )

    @strawberry.field
    async def pipeline(self, info: Info) -> LazyDeploymentPipeline:
        return await related(
            info.context.loaders.pipeline,
            self.pipeline_id,
            pipeline_types.DeploymentPipeline.from_model,
        )

    @strawberry.field(description="Oldest first.")
    async def integrations(
        self, info: Info, first: int | None = 50, after: str | None = None
    ) -> Connection[Integration]:
        page = await info.context.loaders.integrations_page.load(
            page_key(info, self.id, first, after)
        )
        return page.connection(Integration.from_model)

    @strawberry.field(
        description="The four DORA keys of the project's deployments, one entry per "
        "environment of its pipeline in promotion order (only environmentId's when given; "
        "none when it is not in the pipeline), over [since, until): by default the 30 days "
        "until now, at most 366 days."
    )
    async def delivery_metrics(
        self,
        info: Info,
        environment_id: strawberry.ID | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[DeliveryMetrics]:
        return await project_delivery_metrics(
            info,
            project_id=self.id,
            organization_id=self.organization_id,
            pipeline_id=self.pipeline_id,
            environment_id=environment_id,
            since=since,
            until=until,
        )


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
        return snapshot(cls, record)


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
        return snapshot(cls, row, schema=row.config_schema)

    @strawberry.field
    async def project(self, info: Info) -> Project:
        return await related(info.context.loaders.project, self.project_id, Project.from_model)

    @strawberry.field
    def config_schema(self) -> list[ConfigKey]:
        return [ConfigKey.from_record(ConfigKeyRecord.from_json(entry)) for entry in self.schema]

    @strawberry.field(description="What it depends on: a release promotes those first.")
    async def depends_on(self, info: Info) -> list[Integration]:
        rows = await info.context.session.exec(
            select(models.Integration)
            .join(
                models.IntegrationDependency,
                col(models.IntegrationDependency.depends_on_id) == col(models.Integration.id),
            )
            .where(models.IntegrationDependency.integration_id == self.id)
            .order_by(col(models.Integration.name))
        )
        return [Integration.from_model(row) for row in rows.all()]

    @strawberry.field(
        description="The configuration groups linked to it: its deployments run their own "
        "values over these groups' values for their environment."
    )
    async def configuration_groups(self, info: Info) -> list[LazyConfigurationGroup]:
        loaders = info.context.loaders
        links = await loaders.group_links_by_integration.load(self.id)
        rows = await loaders.configuration_group.load_many([link.group_id for link in links])
        return [group_types.ConfigurationGroup.from_model(row) for row in rows if row]

    @strawberry.field(description="Newest first.")
    async def builds(
        self, info: Info, first: int | None = 20, after: str | None = None
    ) -> Connection[Build]:
        page = await info.context.loaders.builds_page.load(
            page_key(info, self.id, first, after, default=20)
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
    ) -> Connection[LazyPromotion]:
        only = tuple(sorted(s.value for s in status)) if status else ()
        page = await info.context.loaders.promotions_page.load(
            page_key(info, self.id, first, after, default=20, only=only)
        )
        return page.connection(promotion_types.Promotion.from_model)

    @strawberry.field(
        description="One entry per environment of the project's pipeline, in "
        "promotion order, NOT_DEPLOYED ones included."
    )
    async def deployments(self, info: Info) -> list[LazyDeployment]:
        return [
            deployment_types.Deployment.from_model(row)
            for row in await self._pipeline_deployments(info)
        ]

    @strawberry.field
    async def deployment(self, info: Info, environment_id: strawberry.ID) -> LazyDeployment | None:
        for row in await self._pipeline_deployments(info):
            if row.environment_id == environment_id:
                return deployment_types.Deployment.from_model(row)
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
        return snapshot(cls, row)

    @strawberry.field
    async def integration(self, info: Info) -> Integration:
        return await related(
            info.context.loaders.integration, self.integration_id, Integration.from_model
        )


@strawberry.input
class CreateProjectInput:
    organization_id: strawberry.ID
    name: str
    description: str | None = None
    pipeline_id: strawberry.ID | None = strawberry.field(
        default=None, description="Defaults to the organization's default pipeline."
    )


@strawberry.input
class ConfigKeyInput:
    key: str
    type: ConfigType = ConfigType.STRING
    required: bool = True
    secret: bool = False
    default_value: str | None = None
    description: str | None = None


@strawberry.input
class CreateIntegrationInput:
    project_id: strawberry.ID
    name: str
    description: str | None = None
    config_schema: list[ConfigKeyInput] = strawberry.field(default_factory=list)


@strawberry.input
class CreateBuildInput:
    integration_id: strawberry.ID
    version: str
    artifact: str
    commit: str | None = None
