"""The viewer's organizations and their environments (operations/environments.graphql)."""

from __future__ import annotations

from typing import TypedDict, cast

from app.client.transport import GraphQLClient


class DataPlaneRef(TypedDict):
    id: str
    name: str
    runtime: str


class Environment(TypedDict):
    id: str
    name: str
    dnsPrefix: str
    description: str | None
    critical: bool
    position: int
    frozen: bool
    freezeReason: str | None
    dataPlane: DataPlaneRef


class EnvironmentRef(TypedDict):
    id: str
    name: str


class Organization(TypedDict):
    id: str
    slug: str
    name: str


class OrganizationEnvironments(TypedDict):
    id: str
    slug: str
    name: str
    environments: list[Environment]


class EnvironmentOperations:
    client: GraphQLClient

    async def organizations(self) -> list[Organization]:
        data = await self.client.execute("ViewerOrganizations")
        return [
            cast("Organization", membership["organization"])
            for membership in data["viewer"]["memberships"]
        ]

    async def organization_environments(self, slug: str) -> OrganizationEnvironments | None:
        data = await self.client.execute("OrganizationEnvironments", {"slug": slug})
        return cast("OrganizationEnvironments | None", data["organization"])

    async def find_project(self, organization_slug: str, project_slug: str) -> str | None:
        """The id of the organization's project with that slug."""
        async for node in self.client.pages(
            "Projects", {"slug": organization_slug}, ("organization", "projects")
        ):
            if node["slug"] == project_slug:
                return str(node["id"])
        return None
