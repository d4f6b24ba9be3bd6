"""Integrations, with the project, organization and pipeline the commands resolve names in, and
their builds (operations/integrations.graphql)."""

from __future__ import annotations

from typing import TypedDict, cast

from app.client.api.environments import EnvironmentRef, OrganizationEnvironments
from app.client.transport import GraphQLClient


class BuildRef(TypedDict):
    id: str
    version: str
    commit: str | None


class IntegrationRef(TypedDict):
    id: str
    name: str


class ConfigKey(TypedDict):
    key: str
    required: bool
    secret: bool


class PipelineRef(TypedDict):
    id: str
    name: str
    environments: list[EnvironmentRef]


class ProjectDetail(TypedDict):
    id: str
    name: str
    slug: str
    organization: OrganizationEnvironments
    pipeline: PipelineRef


class Integration(TypedDict):
    id: str
    name: str
    slug: str
    configSchema: list[ConfigKey]
    project: ProjectDetail


class IntegrationOperations:
    client: GraphQLClient

    async def integration(self, integration_id: str) -> Integration | None:
        data = await self.client.execute("Integration", {"id": integration_id})
        return cast("Integration | None", data["integration"])

    async def find_integration(self, project_id: str, integration_slug: str) -> str | None:
        """The id of the project's integration with that slug."""
        async for node in self.client.pages(
            "Integrations", {"id": project_id}, ("project", "integrations")
        ):
            if node["slug"] == integration_slug:
                return str(node["id"])
        return None

    async def find_build(self, integration_id: str, version: str) -> BuildRef | None:
        async for node in self.client.pages(
            "Builds", {"id": integration_id}, ("integration", "builds")
        ):
            if node["version"] == version:
                return cast("BuildRef", node)
        return None
