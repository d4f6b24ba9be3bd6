"""How two environments of a project differ, integration by integration
(operations/drift.graphql)."""

from __future__ import annotations

from typing import TypedDict, cast

from app.client.api.environments import EnvironmentRef
from app.client.api.integrations import BuildRef, IntegrationRef
from app.client.errors import mutation_result
from app.client.transport import GraphQLClient


class ProjectRef(TypedDict):
    id: str
    slug: str
    name: str


class ConfigurationDrift(TypedDict):
    key: str
    secret: bool
    kind: str  # SAME, DIFFERENT, ONLY_IN_A, ONLY_IN_B, SECRET_NOT_COMPARED
    valueA: str | None  # null for secrets, always
    valueB: str | None


class IntegrationDrift(TypedDict):
    integration: IntegrationRef
    statusA: str
    statusB: str
    buildA: BuildRef | None
    buildB: BuildRef | None
    sameBuild: bool
    differs: bool
    configuration: list[ConfigurationDrift]


class EnvironmentComparison(TypedDict):
    project: ProjectRef
    environmentA: EnvironmentRef
    environmentB: EnvironmentRef
    driftedIntegrations: int
    integrations: list[IntegrationDrift]


class DriftOperations:
    client: GraphQLClient

    async def compare(
        self, project_id: str, environment_a: str, environment_b: str
    ) -> EnvironmentComparison:
        """The comparison; ``NotFound`` or ``Refused`` (an environment outside the pipeline)."""
        data = await self.client.execute(
            "Compare",
            {"project": project_id, "environmentA": environment_a, "environmentB": environment_b},
        )
        result = mutation_result(data, "compare", "EnvironmentComparison")
        result.pop("__typename", None)
        return cast("EnvironmentComparison", result)
