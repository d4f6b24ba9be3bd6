"""What a supervision round reads: every active deployment's running change and where it runs,
in a few queries, and a lease taken only while the deployment still runs that change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_session_factory
from app.models import Deployment, DeploymentStatus
from tests.support.acme import record_run, set_status, set_up_acme
from tests.support.statements import statements as sent_statements
from workers.instances import instance_target, running_targets, target_of
from workers.leases import release_lease, take_lease


async def test_the_running_targets_of_a_round_are_those_each_deployment_has_alone(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    deployments = [
        await record_run(acme, "Development", "2.0", values={"GREETING": "hi"}),
        await record_run(acme, "Production", "1.0", values={"GREETING": "hello"}),
    ]
    async with acme.session() as session:
        rows = [await session.get(Deployment, d.id) for d in deployments]
        active = [row for row in rows if row is not None]
        with sent_statements(engine) as statements:
            running = await running_targets(session, active)
        assert len(statements) == 3, "the changes, the places and the builds"
        alone = [
            await instance_target(session, acme.box, change) for change, _place, _build in running
        ]

    targets = [target_of(acme.box, change, place, build) for change, place, build in running]
    assert [t.change.deployment_id for t in targets] == [d.id for d in deployments]
    # One integration in two environments: two routes, two builds, two configurations.
    assert [t.route for t in targets] == [t.route for t in alone]
    assert targets[0].route != targets[1].route
    assert [t.artifact for t in targets] == [t.artifact for t in alone]
    assert [t.values.get("GREETING") for t in targets] == ["hi", "hello"]


async def test_a_round_leases_a_deployment_only_while_it_runs_the_change_it_read(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    deployment = await record_run(acme, "Development", "2.0")
    sessions = create_session_factory(engine)
    running = deployment.running_change_id
    assert running is not None

    assert not await take_lease(sessions, deployment.id, "round", while_running="another-change")
    assert await take_lease(sessions, deployment.id, "round", while_running=running)
    await release_lease(sessions, deployment.id, "round")

    await set_status(acme, "Development", DeploymentStatus.SUSPENDED)
    assert not await take_lease(sessions, deployment.id, "round", while_running=running)
    # Without the condition the lease is the deployment's whatever it runs.
    assert await take_lease(sessions, deployment.id, "round")
