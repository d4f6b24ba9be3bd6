"""Releases through real processes and the real broker: three integrations in one dependency
chain (the greeter depends on the ledger, which depends on the mailer); a release of the three
to Production promotes the mailer, then the ledger, then the greeter, followed live through
releaseStatus, with the worker that takes the first change killed half-way (one revision
each). A second release whose greeter fails to start fails, and rolls the mailer and the
ledger back to what they ran before: Production is never half-released."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from tests.support.graphql_client import GraphQLClient
from tests.support.graphql_ws import WsClient
from tests.support.greeter import Greeter, greeting, new_greeter, revisions
from tests.support.installations import Cluster
from tests.support.waiting import eventually

DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PAUSED = "pausing after APPLYING_CONFIGURATION"

CREATE_INTEGRATION = """mutation($input: CreateIntegrationInput!) {
    createIntegration(input: $input) {
        __typename ... on Error { code message } ... on Integration { id slug } } }"""
DEPEND = """mutation($i: ID!, $on: [ID!]!) { setIntegrationDependencies(integrationId: $i,
    dependsOn: $on) { __typename ... on Error { code message } ... on Integration { id } } }"""
CREATE_RELEASE = """mutation($input: CreateReleaseInput!) { createRelease(input: $input) {
    __typename ... on Error { code message } ... on Release { id status } } }"""
RELEASE = """query($id: ID!) { release(id: $id) { status error
    members { position rolledBack integration { name } promotion { status } } } }"""
RELEASE_STATUS = """subscription($id: ID!) { releaseStatus(id: $id) { status detail } }"""


def values(greeting_text: str, **extra: str) -> list[dict[str, str]]:
    entries = {"GREETING": greeting_text, "API_KEY": "prod-key", **extra}
    return [{"key": k, "value": v} for k, v in entries.items()]


async def beside(api: GraphQLClient, greeter: Greeter, name: str) -> Greeter:
    """Another integration of the greeter's project (the same program), with build 1.0.0."""
    data = await api.execute(
        """query($s: String!) { organization(slug: $s) {
            projects(first: 1) { edges { node { id } } } } }""",
        {"s": greeter.organization},
    )
    project_id = data["organization"]["projects"]["edges"][0]["node"]["id"]
    schema = [
        {"key": "GREETING", "type": "STRING", "required": True},
        {"key": "API_KEY", "type": "STRING", "required": True, "secret": True},
        {"key": "GREETER_FAIL", "type": "STRING", "required": False},
    ]
    created = await api.ok(
        CREATE_INTEGRATION,
        {"input": {"projectId": project_id, "name": name, "configSchema": schema}},
    )
    ledger = dataclasses.replace(
        greeter, integration_id=created["id"], integration=created["slug"], builds={}
    )
    await ledger.create_build("1.0.0")
    return ledger


async def test_a_release_promotes_in_dependency_order_and_rolls_back_on_failure(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    ledger = await beside(api, greeter, "Ledger")
    mailer = await beside(api, greeter, "Mailer")
    first = workers.start_worker()
    for integration in (greeter, ledger, mailer):
        await integration.deploy(DEVELOPMENT)
    await api.ok(DEPEND, {"i": greeter.integration_id, "on": [ledger.integration_id]})
    await api.ok(DEPEND, {"i": ledger.integration_id, "on": [mailer.integration_id]})

    async def release(name: str, greeter_values: list[dict[str, str]]) -> str:
        made = await api.ok(
            CREATE_RELEASE,
            {
                "input": {
                    "name": name,
                    "sourceEnvironmentId": greeter.environments["Development"],
                    # Given greeter first: the dependencies put the mailer and the ledger first.
                    "members": [
                        {"integrationId": greeter.integration_id, "overrides": greeter_values},
                        {
                            "integrationId": ledger.integration_id,
                            "overrides": values(f"Ledger, {name}"),
                        },
                        {
                            "integrationId": mailer.integration_id,
                            "overrides": values(f"Mailer, {name}"),
                        },
                    ],
                }
            },
        )
        assert made["status"] == "RUNNING", made
        return str(made["id"])

    first.kill()
    paused = workers.start_worker(pause_after_step="APPLYING_CONFIGURATION")
    async with WsClient.connect(workers.api_url, workers.token) as ws:
        spring = await release("spring", values("Greeter, spring"))
        operation = await ws.subscribe(RELEASE_STATUS, {"id": spring})
        await asyncio.to_thread(paused.wait_for_log, PAUSED)  # the mailer's change, half-way
        paused.kill()
        workers.start_worker()  # takes over once the dead worker's lease expires
        streamed = [
            m["payload"]["data"]["releaseStatus"]
            for m in await ws.until_complete(operation, within=90)
        ]
    assert streamed[-1]["status"] == "SUCCEEDED", streamed
    assert any("Greeter: promotion" in (s["detail"] or "") for s in streamed)
    done = (await api.execute(RELEASE, {"id": spring}))["release"]
    assert [(m["integration"]["name"], m["promotion"]["status"]) for m in done["members"]] == [
        ("Mailer", "SUCCEEDED"),
        ("Ledger", "SUCCEEDED"),
        ("Greeter", "SUCCEEDED"),
    ]
    for integration in (mailer, ledger):
        production = await integration.wait_revision("Production", 1)
        assert production["history"]["totalCount"] == 1  # applied once
    await greeter.wait_revision("Production", 1)
    assert (await greeting(ledger.endpoint("prod")))["greeting"] == "Ledger, spring"
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == "Greeter, spring"

    # The greeter of the next release cannot start: the mailer and the ledger, changed before
    # it, are rolled back.
    summer = await release("summer", values("Greeter, summer", GREETER_FAIL="crash"))

    async def ended() -> dict[str, Any] | None:
        row: dict[str, Any] = (await api.execute(RELEASE, {"id": summer}))["release"]
        return row if row["status"] in ("SUCCEEDED", "FAILED") else None

    failed = await eventually(ended, within=90, what="the summer release to end")
    assert failed["status"] == "FAILED", failed
    assert "Greeter FAILED" in failed["error"]
    assert "rolled back: Ledger, Mailer" in failed["error"]
    assert [(m["integration"]["name"], m["rolledBack"]) for m in failed["members"]] == [
        ("Mailer", True),
        ("Ledger", True),
        ("Greeter", False),
    ]
    for integration, name in ((mailer, "Mailer"), (ledger, "Ledger")):
        rolled = await integration.wait_revision("Production", 3, within=60)
        assert [(r["revision"], r["cause"]) for r in revisions(rolled)] == [
            (1, "PROMOTION"),
            (2, "PROMOTION"),
            (3, "ROLLBACK"),
        ]
        assert (await greeting(integration.endpoint("prod")))["greeting"] == f"{name}, spring"
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == "Greeter, spring"
