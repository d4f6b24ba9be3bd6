"""An approval policy covers every change of what runs in its environment, with the engine
running (the step machine in-process, a runtime double that starts nothing): a configuration
change with a restart, a restart that applies new values, a rollback and a deploy into a
protected environment are each filed as a request with its plan, and run only once approved;
a restart that changes nothing needs no review; values set after a request was filed do not
run unreviewed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import ChangeKind, ChangeStatus
from tests.conftest import GraphQLClient
from tests.graphql.governance import (
    APPROVE,
    CONFIG_SCHEMA,
    SECRET_KEY,
    FakeRuntime,
    World,
    deployment_in,
    expect,
    governed_world,
    production_changes,
    promote,
    review,
    running_engine,
    set_policy,
    status_becomes,
)
from tests.graphql.queries import (
    call,
    create_build,
    create_integration,
    create_project,
    mutation,
)
from tests.support.waiting import eventually

# The request's status under an alias: Deployment.status is of another type, and GraphQL
# refuses one field name of two types in one selection.
REQUEST_FIELDS = """
    ... on Promotion {
        id kind requestStatus: status rollbackToRevision build { version }
        targetEnvironment { name }
        configurationChanges { key secret before after kind }
    }
    ... on Deployment { id status revision }
    ... on PromotionBlockedError { blockers }
    ... on Error { message }
"""
SET_CONFIGURATION = mutation(
    "$input: SetConfigurationInput!", "setConfiguration(input: $input)", REQUEST_FIELDS
)
RESTART = mutation("$id: ID!", "restartDeployment(id: $id)", REQUEST_FIELDS)
ROLLBACK = mutation("$input: RollbackInput!", "rollback(input: $input)", REQUEST_FIELDS)
DEPLOY = mutation("$input: DeployInput!", "deploy(input: $input)", REQUEST_FIELDS)
PRODUCTION_VALUES: list[dict[str, str | None]] = [
    {"key": "GREETING", "value": "hello production"},
    {"key": SECRET_KEY, "value": "s3cret-production-token"},
]


@dataclass
class Protected:
    api: GraphQLClient
    world: World
    runtime: FakeRuntime
    production_deployment: str

    async def revision(self) -> int:
        found = await deployment_in(self.api, self.world, "Invoices", "Production")
        return int(found["revision"])

    async def approve(self, request_id: str) -> dict[str, Any]:
        expect(
            await review(self.api, APPROVE, request_id, as_user=self.world.approver), "Promotion"
        )
        return await status_becomes(self.api, self.world, request_id, "SUCCEEDED")

    async def configure(self, greeting: str, *, restart: bool) -> dict[str, Any]:
        return await call(
            self.api,
            SET_CONFIGURATION,
            {
                "input": {
                    "integrationId": self.world.invoices.id,
                    "environmentId": self.world.production,
                    "entries": [{"key": "GREETING", "value": greeting}],
                    "restart": restart,
                }
            },
            as_user=self.world.developer,
        )


@pytest.fixture
async def protected(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> AsyncIterator[Protected]:
    """Production protected by one approval, Invoices ACTIVE there at revision 1."""
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        filed = expect(await promote(api, world, overrides=PRODUCTION_VALUES), "Promotion")
        expect(await review(api, APPROVE, filed["id"], as_user=world.approver), "Promotion")
        await status_becomes(api, world, filed["id"], "SUCCEEDED")
        production = await deployment_in(api, world, "Invoices", "Production")
        yield Protected(api, world, runtime, production["id"])


async def test_a_configuration_change_with_a_restart_waits_for_its_review(
    protected: Protected,
) -> None:
    starts = len(protected.runtime.started)
    request = expect(await protected.configure("hello again", restart=True), "Promotion")
    assert (request["kind"], request["requestStatus"]) == ("CONFIGURATION", "PENDING_APPROVAL")
    assert request["targetEnvironment"] == {"name": "Production"}
    changes = {c["key"]: c for c in request["configurationChanges"]}
    assert changes["GREETING"] == {
        "key": "GREETING",
        "secret": False,
        "before": "hello production",
        "after": "hello again",
        "kind": "CHANGED",
    }
    assert changes[SECRET_KEY]["before"] is None and changes[SECRET_KEY]["after"] is None
    # Nothing ran: what Production serves did not change.
    assert await protected.revision() == 1
    assert len(protected.runtime.started) == starts

    await protected.approve(request["id"])
    assert await protected.revision() == 2
    assert protected.runtime.started[-1].values["GREETING"] == "hello again"


async def test_a_restart_that_applies_new_values_is_a_request_one_that_changes_nothing_is_not(
    protected: Protected,
) -> None:
    same = expect(
        await call(
            protected.api,
            RESTART,
            {"id": protected.production_deployment},
            as_user=protected.world.developer,
        ),
        "Deployment",
    )
    assert same["id"] == protected.production_deployment

    # Values stored without a restart do not run; a restart that would apply them is reviewed.
    expect(await protected.configure("stored, not applied", restart=False), "Deployment")
    request = expect(
        await call(
            protected.api,
            RESTART,
            {"id": protected.production_deployment},
            as_user=protected.world.developer,
        ),
        "Promotion",
    )
    assert request["kind"] == "RESTART"
    done = await protected.approve(request["id"])
    assert done["status"] == "SUCCEEDED"
    assert protected.runtime.started[-1].values["GREETING"] == "stored, not applied"


async def test_a_rollback_in_a_protected_environment_is_a_request(protected: Protected) -> None:
    first = expect(await protected.configure("second revision", restart=True), "Promotion")
    await protected.approve(first["id"])
    assert await protected.revision() == 2

    request = expect(
        await call(
            protected.api,
            ROLLBACK,
            {"input": {"deploymentId": protected.production_deployment, "revision": 1}},
            as_user=protected.world.developer,
        ),
        "Promotion",
    )
    assert (request["kind"], request["rollbackToRevision"]) == ("ROLLBACK", 1)
    greeting = {c["key"]: c for c in request["configurationChanges"]}["GREETING"]
    assert (greeting["before"], greeting["after"]) == ("second revision", "hello production")
    assert await protected.revision() == 2
    await protected.approve(request["id"])
    assert await protected.revision() == 3
    assert protected.runtime.started[-1].values["GREETING"] == "hello production"


async def test_values_set_after_the_request_was_filed_do_not_run_unreviewed(
    protected: Protected,
) -> None:
    request = expect(await protected.configure("reviewed", restart=True), "Promotion")
    # Stored while the request waits (storing is free; running it is what needs a review).
    expect(await protected.configure("slipped in later", restart=False), "Deployment")
    expect(
        await review(protected.api, APPROVE, request["id"], as_user=protected.world.approver),
        "Promotion",
    )
    failed = await status_becomes(protected.api, protected.world, request["id"], "FAILED")
    assert "changed after the request was filed" in failed["error"]
    assert await protected.revision() == 1
    assert all(s.values["GREETING"] != "slipped in later" for s in protected.runtime.started)


async def test_target_values_set_after_a_promotion_request_was_filed_do_not_run_unreviewed(
    protected: Protected,
) -> None:
    api, world = protected.api, protected.world
    request = expect(await promote(api, world, overrides=PRODUCTION_VALUES), "Promotion")
    expect(await protected.configure("slipped in later", restart=False), "Deployment")
    expect(await review(api, APPROVE, request["id"], as_user=world.approver), "Promotion")
    failed = await status_becomes(api, world, request["id"], "FAILED")
    assert "changed after the request was filed" in failed["error"]
    assert all(s.values["GREETING"] != "slipped in later" for s in protected.runtime.started)


async def test_values_stored_while_an_unreviewed_restart_waits_do_not_run(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    """A restart that changes nothing needs no review; values stored between asking for it
    and its running (no worker was there to take it) are not applied by it."""
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        filed = expect(await promote(api, world, overrides=PRODUCTION_VALUES), "Promotion")
        expect(await review(api, APPROVE, filed["id"], as_user=world.approver), "Promotion")
        await status_becomes(api, world, filed["id"], "SUCCEEDED")
    production = await deployment_in(api, world, "Invoices", "Production")
    restarted = expect(
        await call(api, RESTART, {"id": production["id"]}, as_user=world.developer),
        "Deployment",
    )
    assert restarted["id"] == production["id"]
    stored = await call(
        api,
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": world.invoices.id,
                "environmentId": world.production,
                "entries": [{"key": "GREETING", "value": "slipped in later"}],
                "restart": False,
            }
        },
        as_user=world.developer,
    )
    expect(stored, "Deployment")
    starts = len(runtime.started)

    async def restart_ended() -> bool:
        return (await production_changes(engine, world))[-1].status.is_final

    async with running_engine(engine, box, runtime):
        await eventually(restart_ended)
    last = (await production_changes(engine, world))[-1]
    assert (last.kind, last.status) == (ChangeKind.RESTART, ChangeStatus.FAILED)
    assert last.error is not None and "changed after the request was filed" in last.error
    # (The worker starts again what ran before, finding nothing of it on its runtime.)
    assert all(s.change_id != last.id for s in runtime.started[starts:])
    assert all(s.values["GREETING"] != "slipped in later" for s in runtime.started)
    assert (await deployment_in(api, world, "Invoices", "Production"))["revision"] == 1


async def test_a_deploy_into_a_protected_first_environment_is_a_request(
    protected: Protected,
) -> None:
    api, world = protected.api, protected.world
    pipeline = await call(
        api,
        mutation(
            "$input: CreatePipelineInput!",
            "createPipeline(input: $input)",
            "... on DeploymentPipeline { id }",
        ),
        {
            "input": {
                "organizationId": world.org.id,
                "name": "Straight to production",
                "environmentIds": [world.production],
            }
        },
        as_user=world.admin,
    )
    project = await create_project(api, world.org, "Hotfixes", pipeline_id=pipeline["id"])
    integration = await create_integration(
        api, world.org, project["id"], "Hotfix", config_schema=CONFIG_SCHEMA
    )
    build = await create_build(api, world.org, integration, "1.0.0")
    request = expect(
        await call(
            api,
            DEPLOY,
            {
                "input": {
                    "integrationId": integration,
                    "buildId": build["id"],
                    "environmentId": world.production,
                    "configuration": PRODUCTION_VALUES,
                }
            },
            as_user=world.developer,
        ),
        "Promotion",
    )
    assert (request["kind"], request["requestStatus"]) == ("DEPLOY", "PENDING_APPROVAL")
    assert (await deployment_in(api, world, "Hotfix", "Production"))["status"] == ("NOT_DEPLOYED")
    await protected.approve(request["id"])
    deployed = await deployment_in(api, world, "Hotfix", "Production")
    assert (deployed["status"], deployed["revision"]) == ("ACTIVE", 1)
