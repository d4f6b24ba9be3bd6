"""The greeter in a project of its own on a running server (``promenade up``, replicas),
deployed to Development, behind a shell that first sleeps START_DELAY seconds (a value of its
configuration): how a test keeps a promotion in RESTARTING long enough to subscribe in the
middle."""

from __future__ import annotations

import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.processes import INSTANCE_PYTHON
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import FINAL_PROMOTION_STATUSES, GREETER
from tests.support.waiting import eventually


def greeter_artifact() -> str:
    """The greeter's command line, behind ``sleep "$START_DELAY"``."""
    greeter = shlex.join([INSTANCE_PYTHON, str(GREETER)])
    return shlex.join(["sh", "-c", f'sleep "${{START_DELAY:-0}}"; exec {greeter}'])


GREETER_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": False},
    {"key": "START_DELAY", "type": "STRING", "required": False},
]


@dataclass
class Greeter:
    """The greeter in a project of its own, deployed to Development."""

    api: GraphQLClient
    organization_id: str
    environments: dict[str, str]  # name -> id
    integration_id: str
    build_id: str

    async def deployment(self, environment: str) -> dict[str, Any]:
        data = await self.api.execute(
            """query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
                id status revision lastError } } }""",
            {"i": self.integration_id, "e": self.environments[environment]},
        )
        deployment: dict[str, Any] = data["integration"]["deployment"]
        return deployment

    async def wait_active(self, environment: str, revision: int) -> dict[str, Any]:
        async def active() -> dict[str, Any] | None:
            deployment = await self.deployment(environment)
            assert deployment["lastError"] is None, deployment
            ok = deployment["status"] == "ACTIVE" and deployment["revision"] == revision
            return deployment if ok else None

        return await eventually(active, within=30, what=f"{environment} at revision {revision}")

    async def promote(self, overrides: Mapping[str, str] | None = None) -> str:
        """Promote Development's build to Production; the promotion's id."""
        promotion = await self.api.ok(
            """mutation($input: PromoteInput!) { promote(input: $input) {
                __typename ... on Error { code message } ... on Promotion { id } } }""",
            {
                "input": {
                    "integrationId": self.integration_id,
                    "sourceEnvironmentId": self.environments["Development"],
                    "overrides": [{"key": k, "value": v} for k, v in (overrides or {}).items()],
                }
            },
        )
        return str(promotion["id"])

    async def promotion(self, promotion_id: str) -> dict[str, Any]:
        data = await self.api.execute(
            "query($id: ID!) { promotion(id: $id) { status events { status detail at } } }",
            {"id": promotion_id},
        )
        promotion: dict[str, Any] = data["promotion"]
        return promotion

    async def wait_promotion(self, promotion_id: str, status: str) -> dict[str, Any]:
        """The promotion once it reached ``status`` (fails if it ends otherwise)."""

        async def reached() -> dict[str, Any] | None:
            promotion = await self.promotion(promotion_id)
            seen = [event["status"] for event in promotion["events"]]
            if status in seen:
                return promotion
            assert promotion["status"] not in FINAL_PROMOTION_STATUSES, promotion
            return None

        return await eventually(reached, within=30, what=f"{promotion_id} to be {status}")


async def new_greeter(api: GraphQLClient, organization_slug: str = "default") -> Greeter:
    """A project of its own in the organization, the greeter in it, deployed to Development
    (ACTIVE at revision 1)."""
    organization = (
        await api.execute(
            "query($slug: String!) { organization(slug: $slug) { id environments { id name } } }",
            {"slug": organization_slug},
        )
    )["organization"]
    project = await api.ok(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
            __typename ... on Error { code message } ... on Project { id } } }""",
        {"input": {"organizationId": organization["id"], "name": f"Live {secrets.token_hex(3)}"}},
    )
    integration = await api.ok(
        """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
            __typename ... on Error { code message } ... on Integration { id } } }""",
        {"input": {"projectId": project["id"], "name": "Greeter", "configSchema": GREETER_SCHEMA}},
    )
    build = await api.ok(
        """mutation($input: CreateBuildInput!) { createBuild(input: $input) {
            __typename ... on Error { code message } ... on Build { id } } }""",
        {
            "input": {
                "integrationId": integration["id"],
                "version": "1.0.0",
                "artifact": greeter_artifact(),
            }
        },
    )
    environments = {e["name"]: e["id"] for e in organization["environments"]}
    greeter = Greeter(
        api=api,
        organization_id=organization["id"],
        environments=environments,
        integration_id=integration["id"],
        build_id=build["id"],
    )
    await api.ok(
        """mutation($input: DeployInput!) { deploy(input: $input) {
            __typename ... on Error { code message } ... on Deployment { id } } }""",
        {
            "input": {
                "integrationId": greeter.integration_id,
                "buildId": greeter.build_id,
                "environmentId": environments["Development"],
                "configuration": [{"key": "GREETING", "value": "Hello"}],
            }
        },
    )
    await greeter.wait_active("Development", 1)
    return greeter
