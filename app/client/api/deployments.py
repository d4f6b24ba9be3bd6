"""Deployments: read, changed by a deploy or a rollback, and followed through
deploymentEvents (operations/deployments.graphql)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import NotRequired, TypedDict, cast

from app.client.api.environments import EnvironmentRef
from app.client.api.integrations import BuildRef
from app.client.errors import NotFound, mutation_result
from app.client.transport import GraphQLClient


class Deployment(TypedDict):
    id: str
    status: str
    revision: int
    endpointUrl: str | None
    lastError: str | None
    restartRequired: bool
    missingConfiguration: list[str]
    updatedAt: str
    environment: EnvironmentRef
    build: BuildRef | None


class DeploymentEvent(TypedDict):
    deploymentId: str
    integrationId: str
    environmentId: str
    status: str
    revision: int
    endpointUrl: str | None
    detail: str | None
    at: str


class ConfigEntry(TypedDict):
    key: str
    value: str | None


class DeployInput(TypedDict):
    integrationId: str
    buildId: str
    environmentId: str
    configuration: NotRequired[list[ConfigEntry]]
    idempotencyKey: NotRequired[str | None]


class RollbackInput(TypedDict):
    deploymentId: str
    revision: NotRequired[int | None]


class DeploymentOperations:
    client: GraphQLClient

    async def deployments(self, integration_id: str) -> list[Deployment]:
        data = await self.client.execute("Deployments", {"id": integration_id})
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        return cast("list[Deployment]", data["integration"]["deployments"])

    async def deployment(self, deployment_id: str) -> Deployment:
        data = await self.client.execute("Deployment", {"id": deployment_id})
        if data["deployment"] is None:
            raise NotFound(f"no deployment with id {deployment_id}")
        return cast("Deployment", data["deployment"])

    async def deployment_in(self, integration_id: str, environment_id: str) -> Deployment | None:
        data = await self.client.execute(
            "DeploymentIn", {"integration": integration_id, "environment": environment_id}
        )
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        return cast("Deployment | None", data["integration"]["deployment"])

    async def deployment_logs(
        self, integration_id: str, environment_id: str, lines: int
    ) -> tuple[str, list[str]] | None:
        """The deployment's id and its last lines of output; None without a deployment."""
        data = await self.client.execute(
            "DeploymentLogs",
            {"integration": integration_id, "environment": environment_id, "lines": lines},
        )
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        deployment = data["integration"]["deployment"]
        if deployment is None:
            return None
        return str(deployment["id"]), [str(line) for line in deployment["logs"]]

    async def deploy(self, request: DeployInput) -> Deployment:
        data = await self.client.execute("Deploy", {"input": request})
        return cast("Deployment", mutation_result(data, "deploy", "Deployment"))

    async def rollback(self, request: RollbackInput) -> Deployment:
        data = await self.client.execute("Rollback", {"input": request})
        return cast("Deployment", mutation_result(data, "rollback", "Deployment"))

    async def deployment_events(
        self,
        *,
        environment_id: str | None = None,
        integration_id: str | None = None,
        subscribed: asyncio.Event | None = None,
    ) -> AsyncGenerator[DeploymentEvent, None]:
        async for data in self.client.subscribe(
            "DeploymentEvents",
            {"environmentId": environment_id, "integrationId": integration_id},
            subscribed=subscribed,
        ):
            yield cast("DeploymentEvent", data["deploymentEvents"])
