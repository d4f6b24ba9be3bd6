"""Governance with the engine running: the step machine of a worker, in-process, fed by the
outbox relay through the in-process bus (as ``promenade up`` wires them), with a runtime
double that starts no process. The API is the real one over HTTP, on SQLite and PostgreSQL.

What is checked here needs a change to actually run: the last approval starts the promotion by
itself; a promotion queued before a freeze waits for it to be lifted; one already running when
the freeze comes finishes.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from tests.conftest import GraphQLClient
from tests.graphql.governance import (
    APPROVE,
    CANCEL,
    FREEZE,
    SECRET_KEY,
    UNFREEZE,
    FakeRuntime,
    deployment_in,
    expect,
    governed_world,
    production_changes,
    promote,
    promotion,
    refused_without_change,
    review,
    running_engine,
    set_policy,
    state,
    status_becomes,
)
from tests.graphql.queries import call
from tests.support.waiting import eventually

RUN = ["QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "SUCCEEDED"]


def statuses(result: dict[str, object]) -> list[str]:
    events = result["events"]
    assert isinstance(events, list)
    return [str(event["status"]) for event in events]


async def test_the_last_approval_runs_the_promotion_by_itself(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=2)
    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        filed = expect(
            await promote(
                api,
                world,
                overrides=[
                    {"key": "GREETING", "value": "hello production"},
                    {"key": SECRET_KEY, "value": "s3cret-production-token"},
                ],
            ),
            "Promotion",
        )
        first = expect(await review(api, APPROVE, filed["id"], as_user=world.approver), "Promotion")
        assert first["status"] == "PENDING_APPROVAL"
        second = expect(
            await review(api, APPROVE, filed["id"], as_user=world.members["approver2"]),
            "Promotion",
        )
        assert second["status"] == "QUEUED"
        done = await status_becomes(api, world, filed["id"], "SUCCEEDED")
    assert statuses(done) == ["PENDING_APPROVAL", *RUN]
    assert done["finishedAt"] is not None
    # It ran the build of the request, with the request's overrides (the secret included:
    # only the runtime sees it).
    [spec] = runtime.started
    assert spec.values["GREETING"] == "hello production"
    assert spec.values[SECRET_KEY] == "s3cret-production-token"
    [change] = await production_changes(engine, world)
    assert change.build_id == world.invoices.build_id
    production = await deployment_in(api, world, "Invoices", "Production")
    assert (production["status"], production["revision"]) == ("ACTIVE", 1)
    assert production["build"] == {"version": "1.0.0"}

    # Done is done: nobody can cancel or review it any more.
    await refused_without_change(
        api,
        world,
        [
            (
                "the requester cancels a succeeded promotion",
                lambda: review(api, CANCEL, filed["id"], as_user=world.developer),
                "ConflictError",
                "SUCCEEDED",
            ),
            (
                "an admin cancels a succeeded promotion",
                lambda: review(api, CANCEL, filed["id"], as_user=world.admin),
                "ConflictError",
                "SUCCEEDED",
            ),
            (
                "an approval after the end",
                lambda: review(api, APPROVE, filed["id"], as_user=world.admin),
                "ConflictError",
                "no longer pending",
            ),
        ],
    )


async def test_a_promotion_queued_before_a_freeze_waits_and_runs_after_it(
    api: GraphQLClient,
    session: AsyncSession,
    engine: AsyncEngine,
    box: SecretBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workers.steps")
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    filed = expect(await promote(api, world), "Promotion")
    queued = expect(await review(api, APPROVE, filed["id"], as_user=world.approver), "Promotion")
    assert queued["status"] == "QUEUED"
    frozen = await call(
        api, FREEZE, {"id": world.production, "reason": "release freeze"}, as_user=world.admin
    )
    assert expect(frozen, "Environment")["frozen"] is True

    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        # The worker hears of the change (the relay carries the command, and a starting worker
        # announces pending changes again) and leaves it waiting.
        async def worker_looked() -> bool:
            return any("environment is frozen" in r.getMessage() for r in caplog.records)

        await eventually(worker_looked, within=10)
        waiting = await promotion(api, world, filed["id"])
        assert waiting["status"] == "QUEUED"
        assert runtime.started == []

        thawed = await call(api, UNFREEZE, {"id": world.production}, as_user=world.admin)
        assert expect(thawed, "Environment")["frozen"] is False
        done = await status_becomes(api, world, filed["id"], "SUCCEEDED")
    assert statuses(done) == ["PENDING_APPROVAL", *RUN]
    assert len(runtime.started) == 1


async def test_a_promotion_running_when_the_freeze_comes_finishes(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    world = await governed_world(api, session)
    runtime = FakeRuntime()
    runtime.gate = asyncio.Event()  # the instance "starts" until the test lets it
    async with running_engine(engine, box, runtime):
        filed = expect(await promote(api, world), "Promotion")
        assert filed["status"] == "QUEUED"  # no policy: it runs at once
        async with asyncio.timeout(10):
            await runtime.starting.wait()
        assert (await promotion(api, world, filed["id"]))["status"] == "RESTARTING"

        frozen = await call(
            api, FREEZE, {"id": world.production, "reason": "incident 42"}, as_user=world.admin
        )
        assert expect(frozen, "Environment")["frozen"] is True
        # The freeze is in force for anything new...
        refused = await promote(api, world, integration=world.payments)
        assert refused["blockers"] == ["TARGET_FROZEN"]
        # ...and the running one finishes.
        runtime.gate.set()
        done = await status_becomes(api, world, filed["id"], "SUCCEEDED")
    assert statuses(done) == RUN
    current = await state(api, world)
    production = [env for env in current["environments"] if env["name"] == "Production"]
    assert production[0]["frozen"] is True
    assert production[0]["freezeReason"] == "incident 42"


SET_VERIFICATION = """mutation($input: SetVerificationInput!) { setVerification(input: $input) {
    __typename ... on Error { code message } ... on Deployment { id } } }"""


async def test_an_emergency_that_fails_its_checks_is_rolled_back_through_the_freeze(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    """The automatic rollback of a change that failed its verification runs in a frozen
    environment: it restores what ran there before, and waiting for the thaw would leave the
    failed build serving."""
    world = await governed_world(api, session)
    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        first = expect(await promote(api, world, targetEnvironmentId=world.production), "Promotion")
        await status_becomes(api, world, first["id"], "SUCCEEDED")
        production = await deployment_in(api, world, "Invoices", "Production")
        checks = {
            "deploymentId": production["id"],
            "checks": [{"name": "answers", "path": "/"}],
            "attempts": 1,
            "timeoutSeconds": 1.0,
        }
        # The runtime double's endpoint answers nothing: every check fails.
        expect(
            await call(api, SET_VERIFICATION, {"input": checks}, as_user=world.admin), "Deployment"
        )
        frozen = await call(
            api, FREEZE, {"id": world.production, "reason": "r"}, as_user=world.admin
        )
        assert expect(frozen, "Environment")["frozen"] is True
        emergency = expect(
            await promote(
                api,
                world,
                as_user=world.admin,
                targetEnvironmentId=world.production,
                emergency={"reason": "INC-1"},
            ),
            "Promotion",
        )
        failed = await status_becomes(api, world, emergency["id"], "FAILED")
        assert "VERIFYING" in statuses(failed)

        async def rolled_back() -> bool:
            now = await deployment_in(api, world, "Invoices", "Production")
            return bool(now["status"] == "ACTIVE" and now["revision"] == 3)

        await eventually(rolled_back, within=20)
    assert len(runtime.started) == 3  # the first build, the emergency's, the rollback's
