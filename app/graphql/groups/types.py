"""Configuration groups as clients see them: keys, values per environment (secret values
never: write-only), and the integrations they are linked to."""

from __future__ import annotations

from datetime import datetime

import strawberry

from app import models
from app.graphql.configuration import ConfigEntryInput
from app.graphql.context import Info
from app.graphql.environments import LazyEnvironment
from app.graphql.environments import types as environment_types
from app.graphql.objects import Node, related, snapshot
from app.graphql.projects import LazyIntegration
from app.graphql.projects import types as project_types
from app.models import GroupLinkMode, Role


@strawberry.type
class ConfigurationGroupKey:
    key: str
    secret: bool


@strawberry.type
class ConfigurationGroupValue:
    key: str
    secret: bool
    value: str | None = strawberry.field(description="Null for secrets: they are write-only.")
    updated_at: datetime
    environment_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.ConfigurationGroupValue) -> ConfigurationGroupValue:
        return snapshot(cls, row, value=None if row.secret else row.value)

    @strawberry.field
    async def environment(self, info: Info) -> LazyEnvironment:
        return await related(
            info.context.loaders.environment,
            self.environment_id,
            environment_types.Environment.from_model,
        )


@strawberry.type
class ConfigurationGroupLink:
    mode: GroupLinkMode
    integration_id: strawberry.Private[str]

    @classmethod
    def from_model(cls, row: models.ConfigurationGroupLink) -> ConfigurationGroupLink:
        return snapshot(cls, row)

    @strawberry.field
    async def integration(self, info: Info) -> LazyIntegration:
        return await related(
            info.context.loaders.integration,
            self.integration_id,
            project_types.Integration.from_model,
        )


@strawberry.type(
    description="An organization's keys with a value per environment, linked to integrations: "
    "a linked deployment runs its own values over the group's values for its environment."
)
class ConfigurationGroup(Node):
    name: str
    description: str | None
    editor_role: Role | None = strawberry.field(
        description="Who edits the group besides ADMINs; null: ADMINs only."
    )
    created_at: datetime
    updated_at: datetime
    row: strawberry.Private[models.ConfigurationGroup]

    @classmethod
    def from_model(cls, row: models.ConfigurationGroup) -> ConfigurationGroup:
        return snapshot(cls, row, row=row)

    @strawberry.field
    def keys(self) -> list[ConfigurationGroupKey]:
        return [
            ConfigurationGroupKey(key=str(k["key"]), secret=bool(k.get("secret")))
            for k in self.row.keys
        ]

    @strawberry.field(description="In key order; of one environment when environmentId is given.")
    async def values(
        self, info: Info, environment_id: strawberry.ID | None = None
    ) -> list[ConfigurationGroupValue]:
        rows = await info.context.loaders.group_values_by_group.load(self.id)
        return [
            ConfigurationGroupValue.from_model(row)
            for row in rows
            if environment_id is None or row.environment_id == environment_id
        ]

    @strawberry.field(description="The integrations whose deployments run the group's values.")
    async def links(self, info: Info) -> list[ConfigurationGroupLink]:
        rows = await info.context.loaders.group_links_by_group.load(self.id)
        return [ConfigurationGroupLink.from_model(row) for row in rows]


@strawberry.input
class ConfigurationGroupKeyInput:
    key: str = strawberry.field(description="Letters, digits and _, not starting with a digit.")
    secret: bool = False


@strawberry.input
class CreateConfigurationGroupInput:
    organization_id: strawberry.ID
    name: str = strawberry.field(
        description="1 to 63 lowercase letters, digits and inner hyphens; unique in the "
        "organization (a group linked as a file is files/groups/<name>.toml)."
    )
    keys: list[ConfigurationGroupKeyInput]
    description: str | None = None
    editor_role: Role | None = strawberry.field(
        default=None, description="A role whose members edit the group besides ADMINs."
    )


@strawberry.input
class SetConfigurationGroupValuesInput:
    group_id: strawberry.ID
    environment_id: strawberry.ID
    entries: list[ConfigEntryInput]
    restart: bool = strawberry.field(
        default=False,
        description="Restart each running deployment of a linked integration in the "
        "environment with the new values: one change each through the queue, or a request "
        "where an approval policy protects the environment (none while it is frozen).",
    )


@strawberry.input
class LinkConfigurationGroupInput:
    group_id: strawberry.ID
    integration_id: strawberry.ID
    mode: GroupLinkMode = GroupLinkMode.ENVIRONMENT
