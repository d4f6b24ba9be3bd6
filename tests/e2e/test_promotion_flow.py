"""The promotion flow through real ``promenade api`` and ``promenade worker`` processes, on
PostgreSQL and RabbitMQ, with the greeter as the integration: what a user sees through the API
and at the endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.processes import PromenadeProcess, instance_processes
from tests.support.documents import (
    PROMOTION_PLAN,
    RESTART,
    RESUME,
    ROLLBACK,
    SET_CONFIGURATION,
    SUSPEND,
)
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import (
    Greeter,
    answer,
    entries,
    greeter_artifact,
    greeting,
    new_greeter,
    revisions,
)
from tests.support.installations import Cluster

DEV_VALUES = {"GREETING": "Hello from Development", "REPEAT": "3", "API_KEY": "dev-key-5bd1"}
STAGING_VALUES = {"GREETING": "Hello from Staging", "API_KEY": "stg-key-81c0"}


@pytest.fixture(scope="module")
def worker(cluster: Cluster) -> Iterator[PromenadeProcess]:
    worker = cluster.start_worker(concurrency=4)
    yield worker
    worker.stop()


@pytest.fixture
async def greeter(api: GraphQLClient, cluster: Cluster, worker: PromenadeProcess) -> Greeter:
    """The greeter on Development -> Staging -> Production, ACTIVE in Development."""
    greeter = await new_greeter(api, cluster.gateway_url, staging=True)
    await greeter.deploy(DEV_VALUES)
    return greeter


async def test_deploy_then_promote_with_overrides(greeter: Greeter) -> None:
    development = await greeter.deployment("Development")
    assert development["endpointUrl"] == greeter.endpoint("dev")
    assert [(r["revision"], r["cause"]) for r in revisions(development)] == [(1, "DEPLOY")]
    dev_answer = await greeting(greeter.endpoint("dev"))
    assert dev_answer["greeting"] == "Hello from Development"
    assert dev_answer["repeat"] == 3
    assert dev_answer["has_api_key"] is True

    # The plan: what would change, the secret's value masked, and nothing changed.
    plan_input = greeter.promote_input("Development", "Staging", STAGING_VALUES)
    body = await greeter.api.raw(PROMOTION_PLAN, plan_input)
    assert "errors" not in body, body
    assert STAGING_VALUES["API_KEY"] not in str(body)
    plan = body["data"]["promotionPlan"]
    assert plan["build"]["version"] == "1.0.0"
    assert plan["sourceEnvironment"]["name"] == "Development"
    assert plan["targetEnvironment"]["name"] == "Staging"
    assert plan["blockers"] == []
    assert plan["missingConfiguration"] == []
    assert plan["configurationChanges"] == [
        {
            "key": "GREETING",
            "secret": False,
            "before": None,
            "after": "Hello from Staging",
            "kind": "ADDED",
        },
        {"key": "API_KEY", "secret": True, "before": None, "after": None, "kind": "ADDED"},
    ]
    assert (await greeter.promotions())["totalCount"] == 0
    staging = await greeter.deployment("Staging")
    assert (staging["status"], staging["configuration"]) == ("NOT_DEPLOYED", [])

    promoted = await greeter.promote("Development", "Staging", STAGING_VALUES)
    assert promoted["__typename"] == "Promotion", promoted
    assert promoted["overrides"] == [
        {"key": "GREETING", "value": "Hello from Staging", "secret": False},
        {"key": "API_KEY", "value": None, "secret": True},
    ]
    promotion = await greeter.wait_promotion(promoted["id"])
    assert promotion["status"] == "SUCCEEDED", promotion
    assert promotion["error"] is None
    assert [e["status"] for e in promotion["events"]] == [
        "QUEUED",
        "APPLYING_CONFIGURATION",
        "RESTARTING",
        "SUCCEEDED",
    ]

    staging = await greeter.wait_revision("Staging", 1)
    # The build that runs in the source runs in the target, unchanged.
    assert promotion["build"]["id"] == development["build"]["id"] == staging["build"]["id"]
    assert staging["endpointUrl"] == greeter.endpoint("stg")
    assert staging["restartRequired"] is False
    assert staging["configuration"] == [
        {"key": "GREETING", "value": "Hello from Staging", "secret": False},
        {"key": "API_KEY", "value": None, "secret": True},
    ]
    assert [(r["revision"], r["cause"], r["promotion"]) for r in revisions(staging)] == [
        (1, "PROMOTION", {"id": promotion["id"]})
    ]

    # Each environment answers with its own values; nothing was inherited from Development.
    stg_answer = await greeting(greeter.endpoint("stg"))
    assert stg_answer["greeting"] == "Hello from Staging"
    assert stg_answer["repeat"] == 1
    assert stg_answer["has_api_key"] is True
    assert await greeting(greeter.endpoint("dev")) == dev_answer


async def test_missing_configuration_lists_every_key_and_creates_nothing(greeter: Greeter) -> None:
    refused = await greeter.promote("Development", "Staging")
    assert refused["__typename"] == "MissingConfigurationError", refused
    assert refused["code"] == "MISSING_CONFIGURATION"
    assert refused["environment"] == {"name": "Staging"}
    assert refused["missingKeys"] == ["GREETING", "API_KEY"]

    partial = await greeter.promote("Development", "Staging", {"GREETING": "Hi"})
    assert partial["__typename"] == "MissingConfigurationError", partial
    assert partial["missingKeys"] == ["API_KEY"]

    plan = (await greeter.api.execute(PROMOTION_PLAN, greeter.promote_input("Development")))[
        "promotionPlan"
    ]
    assert plan["targetEnvironment"]["name"] == "Staging"
    assert plan["missingConfiguration"] == ["GREETING", "API_KEY"]
    assert plan["blockers"] == ["MISSING_CONFIGURATION"]

    # Nothing was created, and the refused overrides were not stored.
    assert (await greeter.promotions())["totalCount"] == 0
    staging = await greeter.deployment("Staging")
    assert staging["status"] == "NOT_DEPLOYED"
    assert staging["configuration"] == []
    assert staging["history"]["totalCount"] == 0


async def test_promotion_out_of_pipeline_order_is_blocked(greeter: Greeter) -> None:
    values = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}

    skipping = await greeter.promote("Development", "Production", values)
    assert skipping["__typename"] == "PromotionBlockedError", skipping
    assert skipping["code"] == "PROMOTION_BLOCKED"
    assert skipping["blockers"] == ["NOT_NEXT_ENVIRONMENT"]

    from_nothing = await greeter.promote("Staging", "Production", values)
    assert from_nothing["__typename"] == "PromotionBlockedError", from_nothing
    assert from_nothing["blockers"] == ["SOURCE_NOT_ACTIVE"]

    deploy_later = await greeter.api.execute(
        """mutation($input: DeployInput!) { deploy(input: $input) {
            __typename ... on PromotionBlockedError { blockers } } }""",
        {
            "input": {
                "integrationId": greeter.integration_id,
                "buildId": greeter.builds["1.0.0"],
                "environmentId": greeter.environments["Staging"],
                "configuration": entries(values),
            }
        },
    )
    assert deploy_later["deploy"] == {
        "__typename": "PromotionBlockedError",
        "blockers": ["NOT_NEXT_ENVIRONMENT"],
    }

    plan = (
        await greeter.api.execute(
            PROMOTION_PLAN, greeter.promote_input("Development", "Production", values)
        )
    )["promotionPlan"]
    assert plan["blockers"] == ["NOT_NEXT_ENVIRONMENT"]

    assert (await greeter.promotions())["totalCount"] == 0
    for environment in ("Staging", "Production"):
        deployment = await greeter.deployment(environment)
        assert (deployment["status"], deployment["revision"]) == ("NOT_DEPLOYED", 0)
        assert deployment["configuration"] == []


async def test_copy_source_configuration_copies_non_secret_values_only(greeter: Greeter) -> None:
    await greeter.api.ok(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "environmentId": greeter.environments["Staging"],
                "entries": entries({"GREETING": "Staging's own greeting"}),
            }
        },
    )
    # The secret is never copied: without a value of Staging's own it is missing.
    refused = await greeter.promote("Development", "Staging", copySourceConfiguration=True)
    assert refused["__typename"] == "MissingConfigurationError", refused
    assert refused["missingKeys"] == ["API_KEY"]

    plan = (
        await greeter.api.execute(
            PROMOTION_PLAN,
            greeter.promote_input(
                "Development", "Staging", {"API_KEY": "stg-key"}, copySourceConfiguration=True
            ),
        )
    )["promotionPlan"]
    assert plan["blockers"] == []
    assert {c["key"]: (c["kind"], c["after"]) for c in plan["configurationChanges"]} == {
        "GREETING": ("UNCHANGED", "Staging's own greeting"),
        "REPEAT": ("ADDED", "3"),
        "API_KEY": ("ADDED", None),
    }

    promoted = await greeter.promote(
        "Development", "Staging", {"API_KEY": "stg-key"}, copySourceConfiguration=True
    )
    assert promoted["__typename"] == "Promotion", promoted
    assert (await greeter.wait_promotion(promoted["id"]))["status"] == "SUCCEEDED"
    staging = await greeter.wait_revision("Staging", 1)
    # Copied: REPEAT, which Staging had no value for. Kept: Staging's own greeting.
    assert staging["configuration"] == [
        {"key": "GREETING", "value": "Staging's own greeting", "secret": False},
        {"key": "REPEAT", "value": "3", "secret": False},
        {"key": "API_KEY", "value": None, "secret": True},
    ]
    stg_answer = await greeting(greeter.endpoint("stg"))
    assert (stg_answer["greeting"], stg_answer["repeat"]) == ("Staging's own greeting", 3)
    assert stg_answer["has_api_key"] is True


async def test_repeated_idempotency_key_returns_the_first_promotion(greeter: Greeter) -> None:
    first = await greeter.promote(
        "Development", "Staging", STAGING_VALUES, idempotencyKey="release-42"
    )
    again = await greeter.promote(
        "Development", "Staging", STAGING_VALUES, idempotencyKey="release-42"
    )
    assert first["__typename"] == again["__typename"] == "Promotion", (first, again)
    assert again["id"] == first["id"]
    assert (await greeter.wait_promotion(first["id"]))["status"] == "SUCCEEDED"
    after_success = await greeter.promote(
        "Development", "Staging", STAGING_VALUES, idempotencyKey="release-42"
    )
    assert after_success["id"] == first["id"]

    promotions = await greeter.promotions()
    assert promotions["totalCount"] == 1
    staging = await greeter.wait_revision("Staging", 1)
    assert staging["history"]["totalCount"] == 1


async def test_rollback_restores_the_earlier_build_and_configuration(greeter: Greeter) -> None:
    first = await greeter.deployment("Development")
    await greeter.create_build("2.0.0", greeter_artifact("build-2"))
    second = await greeter.deploy({"GREETING": "Version two"}, version="2.0.0")
    assert second["build"]["version"] == "2.0.0"
    v2_answer = await greeting(greeter.endpoint("dev"))
    assert (v2_answer["greeting"], v2_answer["environment"]) == ("Version two", "build-2")

    await greeter.api.ok(ROLLBACK, {"input": {"deploymentId": first["id"]}})
    rolled_back = await greeter.wait_revision("Development", 3)
    history = revisions(rolled_back)
    assert [(r["revision"], r["cause"], r["build"]["version"]) for r in history] == [
        (1, "DEPLOY", "1.0.0"),
        (2, "DEPLOY", "2.0.0"),
        (3, "ROLLBACK", "1.0.0"),
    ]
    assert history[2]["configurationDigest"] == history[0]["configurationDigest"]
    assert rolled_back["build"]["version"] == "1.0.0"
    assert rolled_back["restartRequired"] is False
    assert {c["key"]: c["value"] for c in rolled_back["configuration"]} == {
        "GREETING": "Hello from Development",
        "REPEAT": "3",
        "API_KEY": None,
    }
    v1_answer = await greeting(greeter.endpoint("dev"))
    assert (v1_answer["greeting"], v1_answer["environment"]) == ("Hello from Development", None)
    assert (v1_answer["repeat"], v1_answer["has_api_key"]) == (3, True)

    # An explicit revision: back to what revision 2 ran.
    await greeter.api.ok(ROLLBACK, {"input": {"deploymentId": first["id"], "revision": 2}})
    forward = await greeter.wait_revision("Development", 4)
    assert revisions(forward)[3]["cause"] == "ROLLBACK"
    assert forward["build"]["version"] == "2.0.0"
    answer_4 = await greeting(greeter.endpoint("dev"))
    assert (answer_4["greeting"], answer_4["environment"]) == ("Version two", "build-2")


async def test_restart_and_set_configuration_with_restart_apply_new_values(
    greeter: Greeter,
) -> None:
    development = await greeter.deployment("Development")
    before = await greeting(greeter.endpoint("dev"))

    changed = await greeter.api.ok(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "environmentId": greeter.environments["Development"],
                "entries": entries({"GREETING": "Changed"}),
            }
        },
    )
    assert changed["restartRequired"] is True
    assert changed["revision"] == 1
    # The running instance keeps its snapshot until a restart.
    assert await greeting(greeter.endpoint("dev")) == before

    await greeter.api.ok(RESTART, {"id": development["id"]})
    restarted = await greeter.wait_revision("Development", 2)
    assert revisions(restarted)[1]["cause"] == "RESTART"
    assert restarted["restartRequired"] is False
    after_restart = await greeting(greeter.endpoint("dev"))
    assert after_restart["greeting"] == "Changed"
    assert after_restart["pid"] != before["pid"]

    await greeter.api.ok(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": greeter.integration_id,
                "environmentId": greeter.environments["Development"],
                "entries": entries({"GREETING": "Changed again"}),
                "restart": True,
            }
        },
    )
    reconfigured = await greeter.wait_revision("Development", 3)
    assert revisions(reconfigured)[2]["cause"] == "CONFIG_CHANGE"
    assert reconfigured["restartRequired"] is False
    assert (await greeting(greeter.endpoint("dev")))["greeting"] == "Changed again"


async def test_suspend_removes_the_endpoint_and_resume_brings_it_back(
    greeter: Greeter, cluster: Cluster
) -> None:
    development = await greeter.deployment("Development")
    running = await greeting(greeter.endpoint("dev"))

    await greeter.api.ok(SUSPEND, {"id": development["id"]})
    suspended = await greeter.wait_deployment(
        "Development", lambda d: d["status"] == "SUSPENDED", what="SUSPENDED"
    )
    assert suspended["endpointUrl"] is None
    assert suspended["revision"] == 1
    gone = await answer(greeter.endpoint("dev"))
    assert gone.status_code == 404, gone.text
    assert running["pid"] not in instance_processes(cluster.runtime_dir)

    await greeter.api.ok(RESUME, {"id": development["id"]})
    resumed = await greeter.wait_deployment(
        "Development", lambda d: d["status"] == "ACTIVE", what="ACTIVE again"
    )
    assert resumed["endpointUrl"] == greeter.endpoint("dev")
    # Resuming runs the same revision again: no new revision.
    assert resumed["revision"] == 1
    assert resumed["history"]["totalCount"] == 1
    back = await greeting(greeter.endpoint("dev"))
    assert back["greeting"] == "Hello from Development"
    assert back["pid"] != running["pid"]
