"""The sample integration (examples/greeter) on a running installation: an organization of a
test's own, its pipeline, the greeter and its builds, driven through the API; and what the
greeter answers through the gateway."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.processes import INSTANCE_PYTHON
from tests.support.documents import DEPLOY, DEPLOYMENT, PROMOTE, PROMOTION, PROMOTIONS
from tests.support.graphql_client import GraphQLClient
from tests.support.waiting import eventually

GREETER = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "app.py"
FINAL_PROMOTION_STATUSES = {"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED", "SUPERSEDED"}


async def answer(url: str) -> httpx.Response:
    """GET through the gateway (or anywhere), without the machine's proxy settings."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(url)


async def greeting(url: str) -> dict[str, Any]:
    """What the greeter at ``url`` answers; fails unless it answers 200."""
    response = await answer(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


GREETER_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": True},
    {"key": "REPEAT", "type": "INT", "required": False},
    {"key": "API_KEY", "type": "STRING", "required": True, "secret": True},
    # Read by the greeter from its environment: "crash" or "unhealthy" make it fail.
    {"key": "GREETER_FAIL", "type": "STRING", "required": False},
]


def greeter_artifact(label: str | None = None) -> str:
    """The greeter's command line; a label shows up as its answer's ``environment`` (it is how
    a test tells two builds apart by what they answer)."""
    command = [INSTANCE_PYTHON, str(GREETER)]
    if label is not None:
        command = ["/usr/bin/env", f"ENVIRONMENT_NAME={label}", *command]
    return shlex.join(command)


def entries(values: Mapping[str, str | None]) -> list[dict[str, str | None]]:
    return [{"key": key, "value": value} for key, value in values.items()]


@dataclass
class Greeter:
    """The greeter, set up in an organization of the test's own."""

    api: GraphQLClient
    gateway_url: str
    organization: str  # slug
    environments: dict[str, str]  # name -> id
    project: str  # slug
    integration_id: str
    integration: str  # slug
    builds: dict[str, str]  # version -> id
    # The data plane of Live, as ``promenade worker --data-plane`` names it (ORG/NAME).
    live_plane: str | None = None
    # The pipeline's first environment: Development, or Test on a CONTAINER data plane.
    first: str = "Development"

    def endpoint(self, dns_prefix: str) -> str:
        return (
            f"{self.gateway_url}/{self.organization}/{dns_prefix}/{self.project}/"
            f"{self.integration}/"
        )

    async def create_build(self, version: str, artifact: str | None = None) -> str:
        build = await self.api.ok(
            """mutation($input: CreateBuildInput!) {
                createBuild(input: $input) { __typename ... on Error { code message }
                                             ... on Build { id } } }""",
            {
                "input": {
                    "integrationId": self.integration_id,
                    "version": version,
                    "artifact": artifact or greeter_artifact(),
                }
            },
        )
        self.builds[version] = build["id"]
        return str(build["id"])

    async def deployment(self, environment: str) -> dict[str, Any]:
        data = await self.api.execute(
            DEPLOYMENT,
            {"integration": self.integration_id, "environment": self.environments[environment]},
        )
        deployment: dict[str, Any] = data["integration"]["deployment"]
        return deployment

    async def wait_deployment(
        self,
        environment: str,
        check: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        within: float = 30,
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            deployment = await self.deployment(environment)
            return deployment if check(deployment) else None

        return await eventually(probe, within=within, what=f"{environment}: {what}")

    async def wait_revision(
        self, environment: str, revision: int, *, within: float = 30
    ) -> dict[str, Any]:
        """The deployment once it is ACTIVE at ``revision``; fails at once if a change failed."""

        def check(deployment: dict[str, Any]) -> bool:
            assert deployment["lastError"] is None, deployment["lastError"]
            return bool(deployment["status"] == "ACTIVE" and deployment["revision"] == revision)

        return await self.wait_deployment(
            environment, check, what=f"ACTIVE at revision {revision}", within=within
        )

    async def deploy(
        self,
        values: Mapping[str, str | None] | None = None,
        *,
        version: str = "1.0.0",
        environment: str | None = None,
    ) -> dict[str, Any]:
        """Deploy (into the pipeline's first environment, unless told) and wait until the new
        revision is ACTIVE."""
        environment = environment or self.first
        before = await self.deployment(environment)
        await self.api.ok(
            DEPLOY,
            {
                "input": {
                    "integrationId": self.integration_id,
                    "buildId": self.builds[version],
                    "environmentId": self.environments[environment],
                    "configuration": entries(values or {}),
                }
            },
        )
        return await self.wait_revision(environment, before["revision"] + 1)

    def promote_input(
        self,
        source: str,
        target: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "integrationId": self.integration_id,
            "sourceEnvironmentId": self.environments[source],
            "overrides": entries(overrides or {}),
            **extra,
        }
        if target is not None:
            payload["targetEnvironmentId"] = self.environments[target]
        return {"input": payload}

    async def promote(
        self,
        source: str,
        target: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The promote mutation's result, whatever its type."""
        data = await self.api.execute(
            PROMOTE, self.promote_input(source, target, overrides, **extra)
        )
        result: dict[str, Any] = data["promote"]
        return result

    async def promotion(self, promotion_id: str) -> dict[str, Any]:
        data = await self.api.execute(PROMOTION, {"id": promotion_id})
        promotion: dict[str, Any] = data["promotion"]
        return promotion

    async def wait_promotion(self, promotion_id: str, *, within: float = 30) -> dict[str, Any]:
        """The promotion once it has ended."""

        async def probe() -> dict[str, Any] | None:
            promotion = await self.promotion(promotion_id)
            return promotion if promotion["status"] in FINAL_PROMOTION_STATUSES else None

        return await eventually(probe, within=within, what=f"promotion {promotion_id} to end")

    async def promotions(self) -> dict[str, Any]:
        data = await self.api.execute(PROMOTIONS, {"integration": self.integration_id})
        promotions: dict[str, Any] = data["integration"]["promotions"]
        return promotions


async def new_greeter(
    api: GraphQLClient,
    gateway_url: str,
    *,
    staging: bool = False,
    live_on: str | None = None,
    schema: list[dict[str, Any]] | None = None,
    image: str | None = None,
    plane_settings: dict[str, Any] | None = None,
) -> Greeter:
    """An organization of its own, a project, the greeter integration and its build 1.0.0.

    The project's pipeline: Development -> Production; with ``staging``, Development -> Staging
    -> Production; with ``live_on``, Development -> Live, where Live (dnsPrefix "live") runs on
    a data plane of the organization's of that name, which only a worker started for it
    (``greeter.live_plane``) serves. With ``image`` (the greeter's image), that data plane is a
    CONTAINER one (named ``live_on``, default "containers", with ``plane_settings``), and the
    pipeline Test -> Live runs on it: build 1.0.0 is the image."""
    slug = f"org-{secrets.token_hex(4)}"
    await api.ok(
        """mutation($slug: String!) { createOrganization(slug: $slug, name: $slug) {
            __typename ... on Error { code message } ... on Organization { id } } }""",
        {"slug": slug},
    )
    organization = (
        await api.execute(
            "query($slug: String!) { organization(slug: $slug) { id environments { id name } } }",
            {"slug": slug},
        )
    )["organization"]
    org_id = organization["id"]
    environments = {e["name"]: e["id"] for e in organization["environments"]}
    project_input: dict[str, Any] = {"organizationId": org_id}
    stages = ["Development", "Production"]
    if image is not None:
        live_on = live_on or "containers"
        plane = await api.ok(
            """mutation($input: CreateDataPlaneInput!) { createDataPlane(input: $input) {
                __typename ... on Error { code message } ... on DataPlane { id } } }""",
            {
                "input": {
                    "organizationId": org_id,
                    "name": live_on,
                    "runtime": "CONTAINER",
                    "settings": plane_settings or {},
                }
            },
        )
        for position, (name, prefix) in enumerate((("Test", "test"), ("Live", "live")), 2):
            environments[name] = await _create_environment(
                api,
                {
                    "organizationId": org_id,
                    "name": name,
                    "dnsPrefix": prefix,
                    "position": position,
                    "dataPlaneId": plane["id"],
                },
            )
        stages = ["Test", "Live"]
    elif live_on is not None:
        plane = await api.ok(
            """mutation($input: CreateDataPlaneInput!) { createDataPlane(input: $input) {
                __typename ... on Error { code message } ... on DataPlane { id } } }""",
            {"input": {"organizationId": org_id, "name": live_on, "runtime": "LOCAL_PROCESS"}},
        )
        environments["Live"] = await _create_environment(
            api,
            {
                "organizationId": org_id,
                "name": "Live",
                "dnsPrefix": "live",
                "dataPlaneId": plane["id"],
            },
        )
        stages = ["Development", "Live"]
    if staging:
        environments["Staging"] = await _create_environment(
            api, {"organizationId": org_id, "name": "Staging", "dnsPrefix": "stg", "position": 1}
        )
        stages = ["Development", "Staging", "Production"]
    if stages != ["Development", "Production"]:
        pipeline = await api.ok(
            """mutation($input: CreatePipelineInput!) { createPipeline(input: $input) {
                __typename ... on Error { code message } ... on DeploymentPipeline { id } } }""",
            {
                "input": {
                    "organizationId": org_id,
                    "name": "Release",
                    "environmentIds": [environments[name] for name in stages],
                }
            },
        )
        project_input["pipelineId"] = pipeline["id"]
    # The same names in every test's organization: their endpoints, on the one gateway that
    # every organization's "local" data plane shares, are told apart by the organization.
    project_input["name"] = "Billing"
    project = await api.ok(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
            __typename ... on Error { code message } ... on Project { id slug } } }""",
        {"input": project_input},
    )
    integration = await api.ok(
        """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
            __typename ... on Error { code message } ... on Integration { id slug } } }""",
        {
            "input": {
                "projectId": project["id"],
                "name": "Greeter",
                "configSchema": schema or GREETER_SCHEMA,
            }
        },
    )
    greeter = Greeter(
        api=api,
        gateway_url=gateway_url,
        organization=slug,
        environments=environments,
        project=project["slug"],
        integration_id=integration["id"],
        integration=integration["slug"],
        builds={},
        live_plane=f"{slug}/{live_on}" if live_on is not None else None,
        first=stages[0],
    )
    await greeter.create_build("1.0.0", image)
    return greeter


async def _create_environment(api: GraphQLClient, environment: dict[str, Any]) -> str:
    created = await api.ok(
        """mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) {
            __typename ... on Error { code message } ... on Environment { id } } }""",
        {"input": environment},
    )
    return str(created["id"])


def revisions(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's history, oldest first."""
    return [edge["node"] for edge in reversed(deployment["history"]["edges"])]
