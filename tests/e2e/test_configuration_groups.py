"""Configuration groups through real processes: Production gets its GREETING and its secret
API_KEY from a group linked to the greeter, so a promotion with no overrides runs there; a
group change with restart reaches the instance through one change, with the worker that takes
it killed half-way (one revision); a rollback runs the group values the revision ran."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.documents import ROLLBACK
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter
from tests.support.installations import Cluster

DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PAUSED = "pausing after APPLYING_CONFIGURATION"
SECRET = "group-api-key-0042"

CREATE = """mutation($input: CreateConfigurationGroupInput!) {
    createConfigurationGroup(input: $input) {
        __typename ... on Error { code message } ... on ConfigurationGroup { id } } }"""
SET_VALUES = """mutation($input: SetConfigurationGroupValuesInput!) {
    setConfigurationGroupValues(input: $input) {
        __typename ... on Error { code message }
        ... on ConfigurationGroupValuesSet { restarted { id } requests { id } } } }"""
LINK = """mutation($input: LinkConfigurationGroupInput!) {
    linkConfigurationGroup(input: $input) {
        __typename ... on Error { code message } ... on ConfigurationGroup { id } } }"""


async def test_a_group_configures_production_and_its_change_restarts_it_once(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    first = workers.start_worker()
    await greeter.deploy(DEVELOPMENT)
    org_id = (
        await api.execute(
            "query($s: String!) { organization(slug: $s) { id } }", {"s": greeter.organization}
        )
    )["organization"]["id"]
    group = await api.ok(
        CREATE,
        {
            "input": {
                "organizationId": org_id,
                "name": "production-defaults",
                "keys": [{"key": "GREETING"}, {"key": "API_KEY", "secret": True}],
            }
        },
    )

    async def set_group(values: dict[str, str], restart: bool = False) -> dict[str, Any]:
        return await api.ok(
            SET_VALUES,
            {
                "input": {
                    "groupId": group["id"],
                    "environmentId": greeter.environments["Production"],
                    "entries": [{"key": k, "value": v} for k, v in values.items()],
                    "restart": restart,
                }
            },
        )

    await set_group({"GREETING": "Hello from the group", "API_KEY": SECRET})
    await api.ok(LINK, {"input": {"groupId": group["id"], "integrationId": greeter.integration_id}})

    # Production has no values of its own: the group's are enough to promote.
    promotion = await greeter.promote("Development")
    assert promotion["__typename"] == "Promotion", promotion
    assert (await greeter.wait_promotion(promotion["id"], within=60))["status"] == "SUCCEEDED"
    await greeter.wait_revision("Production", 1)
    answer = await greeting(greeter.endpoint("prod"))
    assert (answer["greeting"], answer["has_api_key"]) == ("Hello from the group", True)

    first.kill()
    paused = workers.start_worker(pause_after_step="APPLYING_CONFIGURATION")
    done = await set_group({"GREETING": "Hello again from the group"}, restart=True)
    production = await greeter.deployment("Production")
    assert done["restarted"] == [{"id": production["id"]}]
    await asyncio.to_thread(paused.wait_for_log, PAUSED)
    paused.kill()
    workers.start_worker()  # takes over once the dead worker's lease expires
    changed = await greeter.wait_revision("Production", 2, within=60)
    assert changed["history"]["totalCount"] == 2  # applied once
    assert changed["restartRequired"] is False
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == "Hello again from the group"

    # Back to revision 1: what ran then, group values included; the group still holds the new
    # value, so a restart would apply it.
    rolled = await api.ok(ROLLBACK, {"input": {"deploymentId": production["id"], "revision": 1}})
    assert rolled["__typename"] == "Deployment", rolled
    back = await greeter.wait_revision("Production", 3, within=60)
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == "Hello from the group"
    assert back["restartRequired"] is True
    # The secret is in no answer about the deployment.
    assert SECRET not in str(back)
