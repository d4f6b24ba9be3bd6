"""The engine in one process: the outbox relay, the bus, workers running the step machine, and the
LOCAL_PROCESS runtime starting real greeter processes, seen through the gateway.

Every test runs on SQLite and on PostgreSQL (the ``engine`` fixture) and, where a bus carries
the commands, on the in-process bus of embedded mode and on RabbitMQ: the same engine tests for
both. Each test has a data plane of its own (so its RabbitMQ queues are its own), with two
environments on it, Build -> Live.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import secrets
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import SessionFactory, create_session_factory, session_scope
from app.messaging.bus import DELIVERY_LIMIT, Bus, Message, command_queue, dead_letter_queue
from app.messaging.inprocess import InProcessBus
from app.messaging.outbox import OutboxRelay
from app.messaging.rabbit import RabbitBus
from app.models import (
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    Organization,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    RuntimeKind,
    User,
)
from app.services import changes, promotions
from app.services.configuration import ConfigEntry, ConfigKey, set_configuration
from app.services.dataplanes import ServedDataPlane, create_data_plane, served
from app.services.environments import create_environment
from app.services.pipelines import create_pipeline
from app.services.projects import create_build, create_integration, create_project
from tests.conftest import make_organization, make_user
from tests.processes import instance_processes, kill_instances
from tests.support.process_logs import json_lines, process_logging
from tests.support.waiting import eventually
from workers.gateway import create_gateway_app
from workers.planes import always
from workers.runtimes.base import Instance, InstanceSpec
from workers.runtimes.local_process import LocalProcessRuntime
from workers.service import Worker
from workers.steps import StepMachine

GREETER = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "app.py"
GATEWAY_URL = "http://gateway.test"
AMQP_HELP = (
    "These tests need RabbitMQ. Start one (on the project's machines: rabbitmq-server "
    "-detached) and set PROMENADE_TEST_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/"
)
SCHEMA = [
    ConfigKey(key="GREETING"),
    ConfigKey(key="API_KEY", secret=True),
    ConfigKey(key="GREETER_FAIL", required=False),
]
BUILD_VALUES = {"GREETING": "Hello from Build", "API_KEY": "build-key"}
FINAL = {PromotionStatus.SUCCEEDED, PromotionStatus.FAILED}
PAUSE_POINTS = ["QUEUED", "APPLYING_CONFIGURATION", "STARTED", "ROUTED"]
RACERS = 6


def local_runtime(state_dir: Path) -> LocalProcessRuntime:
    """The runtime of these tests: no request is in flight when a route moves, so old
    instances stop almost at once rather than after ROUTE_SETTLE_S."""
    return LocalProcessRuntime(state_dir, GATEWAY_URL, route_settle_s=0.05)


T = TypeVar("T")


def artifact(label: str | None = None) -> str:
    command = [sys.executable, str(GREETER)]
    if label is not None:
        command = ["/usr/bin/env", f"ENVIRONMENT_NAME={label}", *command]
    return shlex.join(command)


def entries(values: Mapping[str, str | None]) -> list[ConfigEntry]:
    return [ConfigEntry(key=key, value=value) for key, value in values.items()]


# ---- the world: an organization with a data plane of its own ----------------------------------


@dataclass
class World:
    admin: User
    plane: ServedDataPlane
    environments: dict[str, str]  # Build and Live -> id
    project_id: str
    organization_slug: str
    project_slug: str
    integration_id: str
    route: dict[str, str]  # environment -> endpoint URL
    builds: dict[str, str] = field(default_factory=dict)  # version -> id

    @property
    def data_plane(self) -> str:
        """The data plane's routing key (its id): what its workers serve."""
        return self.plane.routing_key


async def make_world(session: AsyncSession, data_plane: str | None = None) -> World:
    """An organization with a data plane (of a new name, unless one is given) and Build -> Live
    on it."""
    suffix = secrets.token_hex(4)
    admin = await make_user(session, f"admin-{suffix}@example.com")
    org = await make_organization(session, admin, slug=f"org-{suffix}")
    plane = await create_data_plane(
        session,
        actor=admin,
        organization_id=org.id,
        name=data_plane or f"steps-{suffix}",
        runtime=RuntimeKind.LOCAL_PROCESS,
    )
    environments = {
        name: (
            await create_environment(
                session,
                actor=admin,
                organization_id=org.id,
                name=name,
                dns_prefix=name.lower(),
                data_plane_id=plane.id,
            )
        ).id
        for name in ("Build", "Live")
    }
    pipeline = await create_pipeline(
        session,
        actor=admin,
        organization_id=org.id,
        name="Release",
        environment_ids=list(environments.values()),
    )
    project = await create_project(
        session, actor=admin, organization_id=org.id, name="Billing", pipeline_id=pipeline.id
    )
    world = World(
        admin=admin,
        plane=served(plane, org.slug),
        environments=environments,
        project_id=project.id,
        organization_slug=org.slug,
        project_slug=project.slug,
        integration_id="",
        route={},
    )
    return await add_integration(session, world, "Greeter")


async def add_integration(session: AsyncSession, world: World, name: str) -> World:
    """The greeter as an integration (of that name) of the world's project, with build 1.0.0."""
    integration = await create_integration(
        session, actor=world.admin, project_id=world.project_id, name=name, config_schema=SCHEMA
    )
    build = await create_build(
        session,
        actor=world.admin,
        integration_id=integration.id,
        version="1.0.0",
        artifact=artifact(),
    )
    await session.commit()
    return dataclasses.replace(
        world,
        integration_id=integration.id,
        route={
            env: f"{GATEWAY_URL}/{world.organization_slug}/{env.lower()}/{world.project_slug}/"
            f"{integration.slug}/"
            for env in world.environments
        },
        builds={"1.0.0": build.id},
    )


# ---- the engine --------------------------------------------------------------------------------


@dataclass
class Plant:
    """Relay, bus, workers and the gateway of one test, and what it does through the services."""

    sessions: SessionFactory
    box: SecretBox
    world: World
    runtime_dir: Path
    gateway: httpx.AsyncClient
    open_bus: Callable[[], Awaitable[Bus]]
    relay: OutboxRelay
    workers: list[Worker] = field(default_factory=list)

    async def start_worker(self, *, concurrency: int = 4, runtime: Any = None) -> Worker:
        """A worker with a connection and a runtime object of its own, as a process has."""
        worker = Worker(
            sessions=self.sessions,
            box=self.box,
            bus=await self.open_bus(),
            runtime_for=always(runtime or local_runtime(self.runtime_dir)),
            planes=[self.world.plane],
            concurrency=concurrency,
        )
        await worker.start()
        self.workers.append(worker)
        return worker

    async def act(self, action: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run a service call in a transaction of its own; the relay hears of the commit."""
        async with session_scope(self.sessions) as session:
            result = await action(session)
        self.relay.wake()
        return result

    async def deploy(
        self, values: Mapping[str, str | None] | None = None, version: str = "1.0.0"
    ) -> Deployment:
        world = self.world
        deployed = await self.act(
            lambda s: changes.deploy(
                s,
                actor=world.admin,
                box=self.box,
                integration_id=world.integration_id,
                build_id=world.builds[version],
                environment_id=world.environments["Build"],
                configuration=entries(values or {}),
            )
        )
        assert isinstance(deployed, Deployment), "Build is not protected: it deploys at once"
        return deployed

    async def promote(self, overrides: Mapping[str, str | None]) -> Promotion:
        request = promotions.PromotionRequest(
            integration_id=self.world.integration_id,
            source_environment_id=self.world.environments["Build"],
            overrides=entries(overrides),
        )
        return await self.act(
            lambda s: promotions.promote(s, actor=self.world.admin, box=self.box, request=request)
        )

    async def deployment(self, environment: str) -> Deployment:
        async with self.sessions() as session:
            row = (
                await session.exec(
                    select(Deployment).where(
                        Deployment.integration_id == self.world.integration_id,
                        Deployment.environment_id == self.world.environments[environment],
                    )
                )
            ).one()
            return row

    async def wait_revision(
        self, environment: str, revision: int, *, within: float = 30
    ) -> Deployment:
        async def check() -> Deployment | None:
            deployment = await self.deployment(environment)
            assert deployment.last_error is None, deployment.last_error
            if deployment.status is DeploymentStatus.ACTIVE and deployment.revision == revision:
                return deployment
            return None

        return await eventually(check, within=within, what=f"{environment} at {revision}")

    async def wait_error(self, environment: str) -> Deployment:
        async def check() -> Deployment | None:
            deployment = await self.deployment(environment)
            return deployment if deployment.last_error else None

        return await eventually(check, within=30, what=f"a failed change in {environment}")

    async def wait_promotion(self, promotion_id: str, *, within: float = 30) -> Promotion:
        async def check() -> Promotion | None:
            async with self.sessions() as session:
                promotion = await session.get(Promotion, promotion_id)
                assert promotion is not None
                return promotion if promotion.status in FINAL else None

        return await eventually(check, within=within, what=f"promotion {promotion_id}")

    async def revisions(self, environment: str) -> list[DeploymentRevision]:
        deployment = await self.deployment(environment)
        async with self.sessions() as session:
            return list(
                (
                    await session.exec(
                        select(DeploymentRevision)
                        .where(DeploymentRevision.deployment_id == deployment.id)
                        .order_by(col(DeploymentRevision.revision))
                    )
                ).all()
            )

    async def events(self, promotion_id: str) -> list[PromotionEvent]:
        async with self.sessions() as session:
            return list(
                (
                    await session.exec(
                        select(PromotionEvent)
                        .where(PromotionEvent.promotion_id == promotion_id)
                        .order_by(col(PromotionEvent.at), col(PromotionEvent.id))
                    )
                ).all()
            )

    async def greeting(self, environment: str) -> dict[str, Any]:
        response = await self.gateway.get(self.world.route[environment])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def instances(self, deployment_id: str) -> list[int]:
        return instance_processes(self.runtime_dir, deployment_id)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    url = os.environ.get("PROMENADE_TEST_AMQP_URL")
    if not url:
        pytest.fail(f"PROMENADE_TEST_AMQP_URL is not set. {AMQP_HELP}", pytrace=False)

    async def probe() -> None:
        connection = await aio_pika.connect(url, timeout=5)
        await connection.close()

    try:
        # In a thread of its own: the fixture may be set up from within a running event loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except Exception as exc:
        pytest.fail(f"cannot connect to {url} ({exc!r}). {AMQP_HELP}", pytrace=False)
    return url


async def _delete_queues(url: str, data_plane: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    try:
        channel = await connection.channel()
        for name in (command_queue(data_plane), dead_letter_queue(data_plane)):
            await channel.queue_delete(name)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_plant(
    engine: AsyncEngine, bus_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Plant]:
    sessions = create_session_factory(engine)
    box = SecretBox(Fernet.generate_key().decode())
    async with sessions() as session:
        world = await make_world(session)
    url: str | None = request.getfixturevalue("amqp_url") if bus_kind == "rabbit" else None
    buses: list[Bus] = []
    inprocess = InProcessBus(retry_delay=0.01)

    async def open_bus() -> Bus:
        # In-process: one process, one bus. RabbitMQ: a connection per worker, as processes have.
        bus: Bus = (
            inprocess if url is None else RabbitBus(url, retry_delay=0.01, reconnect_interval=0.2)
        )
        await bus.connect()
        buses.append(bus)
        return bus

    runtime_dir = tmp_path / "runtime"
    relay = OutboxRelay(sessions, await open_bus(), poll_interval=0.05)
    relaying = asyncio.create_task(relay.run())
    gateway_app = create_gateway_app(runtime_dir / "routes.json")
    plant: Plant | None = None
    try:
        async with (
            gateway_app.router.lifespan_context(gateway_app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway_app), base_url=GATEWAY_URL
            ) as gateway,
        ):
            plant = Plant(
                sessions=sessions,
                box=box,
                world=world,
                runtime_dir=runtime_dir,
                gateway=gateway,
                open_bus=open_bus,
                relay=relay,
            )
            yield plant
    finally:
        if plant is not None:
            for worker in plant.workers:
                await worker.drain()
        await relay.stop()
        await relaying
        for bus in reversed(buses):
            await bus.close()
        kill_instances(runtime_dir)
        if url is not None:
            await _delete_queues(url, world.data_plane)


@pytest.fixture(params=["inprocess", "rabbit"])
async def plant(
    request: pytest.FixtureRequest, engine: AsyncEngine, tmp_path: Path
) -> AsyncIterator[Plant]:
    async with running_plant(engine, request.param, tmp_path, request) as running:
        yield running


# ---- the tests ---------------------------------------------------------------------------------


async def test_deploy_and_promote_run_one_build_with_each_environments_values(
    plant: Plant,
) -> None:
    await plant.start_worker()
    await plant.deploy(BUILD_VALUES)
    build = await plant.wait_revision("Build", 1)
    assert build.endpoint_url == plant.world.route["Build"]
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"

    promotion = await plant.promote({"GREETING": "Hello from Live", "API_KEY": "live-key"})
    done = await plant.wait_promotion(promotion.id)
    assert done.status is PromotionStatus.SUCCEEDED, done.error
    assert [e.status for e in await plant.events(promotion.id)] == [
        PromotionStatus.QUEUED,
        PromotionStatus.APPLYING_CONFIGURATION,
        PromotionStatus.RESTARTING,
        PromotionStatus.SUCCEEDED,
    ]
    live = await plant.wait_revision("Live", 1)
    assert live.build_id == build.build_id == plant.world.builds["1.0.0"]
    [revision] = await plant.revisions("Live")
    assert (revision.cause.value, revision.promotion_id) == ("PROMOTION", promotion.id)
    answer = await plant.greeting("Live")
    assert (answer["greeting"], answer["has_api_key"]) == ("Hello from Live", True)
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"
    assert plant.instances(live.id) == [answer["pid"]]


async def test_restart_rollback_suspend_and_resume(plant: Plant) -> None:
    await plant.start_worker()
    world = plant.world
    await plant.deploy(BUILD_VALUES)
    first = await plant.wait_revision("Build", 1)

    async def set_greeting(greeting: str, *, restart: bool) -> None:
        async def action(session: AsyncSession) -> None:
            deployment = await set_configuration(
                session,
                actor=world.admin,
                box=plant.box,
                integration_id=world.integration_id,
                environment_id=world.environments["Build"],
                entries=entries({"GREETING": greeting}),
            )
            if restart:
                await changes.restart_for_configuration(
                    session, actor=world.admin, box=plant.box, deployment=deployment
                )

        await plant.act(action)

    await set_greeting("Restarted", restart=False)
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"
    await plant.act(
        lambda s: changes.restart(s, actor=world.admin, box=plant.box, deployment_id=first.id)
    )
    await plant.wait_revision("Build", 2)
    assert (await plant.greeting("Build"))["greeting"] == "Restarted"

    await set_greeting("Reconfigured", restart=True)
    await plant.wait_revision("Build", 3)
    assert (await plant.greeting("Build"))["greeting"] == "Reconfigured"

    await plant.act(
        lambda s: changes.rollback(
            s, actor=world.admin, box=plant.box, deployment_id=first.id, revision=1
        )
    )
    rolled_back = await plant.wait_revision("Build", 4)
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"
    assert [(r.revision, r.cause.value) for r in await plant.revisions("Build")] == [
        (1, "DEPLOY"),
        (2, "RESTART"),
        (3, "CONFIG_CHANGE"),
        (4, "ROLLBACK"),
    ]
    assert rolled_back.applied_config_version == rolled_back.config_version

    await plant.act(lambda s: changes.suspend(s, actor=world.admin, deployment_id=first.id))

    async def suspended() -> Deployment | None:
        deployment = await plant.deployment("Build")
        return deployment if deployment.status is DeploymentStatus.SUSPENDED else None

    await eventually(suspended, within=30, what="SUSPENDED")
    assert (await plant.gateway.get(world.route["Build"])).status_code == 404
    assert plant.instances(first.id) == []

    await plant.act(lambda s: changes.resume(s, actor=world.admin, deployment_id=first.id))
    resumed = await plant.wait_revision("Build", 4)
    assert resumed.endpoint_url == world.route["Build"]
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"


async def test_a_build_that_fails_to_start_leaves_the_old_instance_serving(plant: Plant) -> None:
    await plant.start_worker()
    await plant.deploy(BUILD_VALUES)
    await plant.wait_revision("Build", 1)
    before = await plant.greeting("Build")

    await plant.deploy({"GREETER_FAIL": "crash"})
    failed = await plant.wait_error("Build")
    assert failed.last_error is not None
    assert "exited with code 3" in failed.last_error
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in failed.last_error
    assert (failed.status, failed.revision) == (DeploymentStatus.ACTIVE, 1)
    assert await plant.greeting("Build") == before
    assert plant.instances(failed.id) == [before["pid"]]


async def test_promotions_of_one_deployment_run_one_at_a_time_across_workers(
    plant: Plant,
) -> None:
    await plant.start_worker(concurrency=3)
    await plant.start_worker(concurrency=3)
    await plant.deploy(BUILD_VALUES)
    await plant.wait_revision("Build", 1)

    requested = await asyncio.gather(
        *(plant.promote({"GREETING": f"racer {n}", "API_KEY": "k"}) for n in range(RACERS))
    )
    done = await asyncio.gather(*(plant.wait_promotion(p.id, within=60) for p in requested))
    assert [p.status for p in done] == [PromotionStatus.SUCCEEDED] * RACERS, [p.error for p in done]
    history = await plant.revisions("Live")
    assert [r.revision for r in history] == list(range(1, RACERS + 1))
    assert sorted(r.promotion_id or "" for r in history) == sorted(p.id for p in requested)
    events = {p.id: await plant.events(p.id) for p in requested}

    def at(promotion_id: str | None, status: PromotionStatus) -> Any:
        assert promotion_id is not None
        [event] = [e for e in events[promotion_id] if e.status is status]
        return event.at

    for before, after in itertools.pairwise(history):
        assert at(before.promotion_id, PromotionStatus.SUCCEEDED) <= at(
            after.promotion_id, PromotionStatus.APPLYING_CONFIGURATION
        )
    live = await plant.deployment("Live")
    answer = await plant.greeting("Live")
    async with plant.sessions() as session:
        last = await session.get(Promotion, history[-1].promotion_id)
        assert last is not None
        [override, _] = promotions.sealed_entries(plant.box, last)[0]
    assert answer["greeting"] == override.value
    assert plant.instances(live.id) == [answer["pid"]]


@dataclass
class BrokenRuntime:
    """A runtime whose start raises an unexpected error (not a failed start): for every
    instance, or only for those whose GREETING is ``poison``."""

    inner: LocalProcessRuntime
    poison: str | None = None
    starts: int = 0

    async def start(self, spec: InstanceSpec) -> Instance:
        if self.poison is not None and spec.values.get("GREETING") != self.poison:
            return await self.inner.start(spec)
        self.starts += 1
        raise RuntimeError("the disk is on fire")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_change_that_keeps_failing_is_dead_lettered_with_its_reason(
    plant: Plant,
) -> None:
    await plant.start_worker()
    await plant.deploy(BUILD_VALUES)
    await plant.wait_revision("Build", 1)
    for worker in plant.workers:
        await worker.drain()
    plant.workers.clear()
    broken = BrokenRuntime(local_runtime(plant.runtime_dir))
    await plant.start_worker(runtime=broken)

    promotion = await plant.promote({"GREETING": "never", "API_KEY": "k"})
    done = await plant.wait_promotion(promotion.id, within=60)
    assert done.status is PromotionStatus.FAILED
    assert done.error is not None
    assert "gave up after 5 deliveries" in done.error, done.error
    assert "RuntimeError: the disk is on fire" in done.error, done.error
    assert broken.starts >= 5
    live = await plant.deployment("Live")
    assert live.revision == 0
    assert live.last_error == done.error


async def test_a_change_that_keeps_failing_does_not_fail_the_one_queued_after_it(
    engine: AsyncEngine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The deliveries are made by hand, so that their order is the test's: on a bus it depends
    on timing (on RabbitMQ the innocent promotion usually fails, in-process now and then)."""
    async with running_plant(engine, "inprocess", tmp_path, request) as plant:
        await plant.start_worker()
        await plant.deploy(BUILD_VALUES)
        await plant.wait_revision("Build", 1)
        for worker in plant.workers:
            await worker.drain()
        plant.workers.clear()
        machine = StepMachine(
            sessions=plant.sessions,
            box=plant.box,
            runtime=BrokenRuntime(local_runtime(plant.runtime_dir), "poison"),
            owner="worker",
        )
        poisoned = await plant.promote({"GREETING": "poison", "API_KEY": "k"})
        fine = await plant.promote({"GREETING": "fine", "API_KEY": "k"})
        live = await plant.deployment("Live")

        async def command(promotion: Promotion) -> Message:
            async with plant.sessions() as session:
                [change_id] = (
                    await session.exec(
                        select(DeploymentChange.id).where(
                            DeploymentChange.promotion_id == promotion.id
                        )
                    )
                ).all()
            return Message(
                message_id=change_id,
                routing_key=plant.world.data_plane,
                body={"change_id": change_id, "deployment_id": live.id},
            )

        # Each delivery of the fine promotion's command finds the poisoned change ahead of it
        # failing: that failure counts against the poisoned change's own command, so this one
        # is acknowledged and waits for its turn, never failing.
        for _ in range(DELIVERY_LIMIT):
            await machine.handle_command(await command(fine))
        async with plant.sessions() as session:
            innocent = await session.get(Promotion, fine.id)
            assert innocent is not None
            assert innocent.status is PromotionStatus.QUEUED, innocent.error
        # The poisoned change's own command fails each delivery and is dead-lettered; its dead
        # letter fails it and lets the fine one run.
        for _ in range(DELIVERY_LIMIT):
            with pytest.raises(RuntimeError, match="the disk is on fire"):
                await machine.handle_command(await command(poisoned))
        await machine.handle_dead_letter(await command(poisoned))
        assert (await plant.wait_promotion(poisoned.id)).status is PromotionStatus.FAILED
        assert (await plant.wait_promotion(fine.id)).status is PromotionStatus.SUCCEEDED
        assert (await plant.greeting("Live"))["greeting"] == "fine"


async def test_other_deployments_proceed_while_one_has_a_backlog(plant: Plant) -> None:
    """One change at a time per deployment, and other deployments in parallel: a backlog of
    promotions on one deployment must not hold up the promotion of another."""
    await plant.start_worker(concurrency=2)
    async with plant.sessions() as session:
        other = dataclasses.replace(
            plant, world=await add_integration(session, plant.world, "Other greeter")
        )
    await asyncio.gather(plant.deploy(BUILD_VALUES), other.deploy(BUILD_VALUES))
    await asyncio.gather(plant.wait_revision("Build", 1), other.wait_revision("Build", 1))

    # Queue the backlog and the lone promotion while no worker consumes, so that the order in
    # which the worker meets them does not depend on how fast the requests were made.
    for worker in plant.workers:
        await worker.drain()
    plant.workers.clear()
    backlog = [await plant.promote({"GREETING": f"busy {n}", "API_KEY": "k"}) for n in range(4)]
    lone = await other.promote({"GREETING": "alone", "API_KEY": "k"})
    await plant.start_worker(concurrency=2)
    lone_done = await plant.wait_promotion(lone.id, within=60)
    backlog_done = await asyncio.gather(*(plant.wait_promotion(p.id, within=60) for p in backlog))
    assert lone_done.status is PromotionStatus.SUCCEEDED
    assert lone_done.finished_at is not None
    last_of_backlog = max(p.finished_at for p in backlog_done if p.finished_at is not None)
    assert lone_done.finished_at < last_of_backlog, (
        "the other deployment's promotion waited for the whole backlog"
    )


async def test_two_organizations_with_the_same_names_have_data_planes_and_endpoints_of_their_own(
    plant: Plant,
) -> None:
    await plant.start_worker()
    async with plant.sessions() as session:
        # Another organization whose data plane, environments, project and integration have
        # the same names: a data plane of its own, which our workers do not serve.
        other = dataclasses.replace(
            plant, world=await make_world(session, data_plane=plant.world.plane.label.split("/")[1])
        )
    assert other.world.data_plane != plant.world.data_plane
    await plant.deploy(BUILD_VALUES)
    ours = await plant.wait_revision("Build", 1)
    theirs_deployment = await other.deploy({"GREETING": "Hello from the other one", "API_KEY": "k"})
    await asyncio.sleep(1.0)
    async with plant.sessions() as session:
        waiting = await session.get(Deployment, theirs_deployment.id)
        assert waiting is not None
        assert waiting.status is DeploymentStatus.IN_PROGRESS, "our workers ran their change"

    await other.start_worker()
    theirs = await other.wait_revision("Build", 1)
    assert ours.endpoint_url != theirs.endpoint_url
    assert (await plant.greeting("Build"))["greeting"] == "Hello from Build"
    assert (await other.greeting("Build"))["greeting"] == "Hello from the other one"


# ---- what a worker's log says of a change ------------------------------------------------------

library_log = logging.getLogger("tests.library")


@dataclass
class ChattyRuntime:
    """A runtime that logs as library code does, from its start and from a task that the start
    spawns."""

    inner: LocalProcessRuntime

    async def start(self, spec: InstanceSpec) -> Instance:
        library_log.info("starting an instance of %s", spec.deployment_id)

        async def aside() -> None:
            library_log.info("a task of the start")

        await asyncio.create_task(aside())
        return await self.inner.start(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_each_log_line_of_a_changes_work_names_its_organization_deployment_and_change(
    engine: AsyncEngine,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with running_plant(engine, "inprocess", tmp_path, request) as plant:
        with process_logging(caplog, "json") as stream:
            await plant.start_worker(runtime=ChattyRuntime(local_runtime(plant.runtime_dir)))
            await plant.deploy(BUILD_VALUES)
            await plant.wait_revision("Build", 1)
            promotion = await plant.promote({"GREETING": "Hello from Live", "API_KEY": "k"})
            assert (await plant.wait_promotion(promotion.id)).status is PromotionStatus.SUCCEEDED
        async with plant.sessions() as session:
            rows = (
                await session.exec(
                    select(DeploymentChange).order_by(
                        col(DeploymentChange.created_at), col(DeploymentChange.id)
                    )
                )
            ).all()
            organization = (
                await session.exec(
                    select(Organization).where(Organization.slug == plant.world.organization_slug)
                )
            ).one()
    deploy, promoted = rows
    assert (deploy.promotion_id, promoted.promotion_id) == (None, promotion.id)

    lines = json_lines(stream.getvalue())
    ours = [line for line in lines if line["logger"] == "tests.library"]
    fields = ("organization_id", "deployment_id", "change_id", "promotion_id")
    expected = []
    for change in (deploy, promoted):
        named = {
            "organization_id": change.organization_id,
            "deployment_id": change.deployment_id,
            "change_id": change.id,
        }
        if change.promotion_id is not None:  # a deploy has none, and says none
            named["promotion_id"] = change.promotion_id
        expected += [
            {"message": f"starting an instance of {change.deployment_id}", **named},
            {"message": "a task of the start", **named},
        ]
    assert [
        {k: v for k, v in line.items() if k in ("message", *fields)} for line in ours
    ] == expected
    assert deploy.organization_id == promoted.organization_id == organization.id
    for line in ours:
        assert line["level"] == "INFO"
        assert line["time"].endswith("Z")
        assert datetime.fromisoformat(line["time"]).utcoffset() == timedelta(0)
    # Outside a change's work, no change is named.
    [ready] = [line for line in lines if "serves data plane" in line["message"]]
    assert not set(fields) & set(ready), ready


@dataclass
class QuotingRuntime:
    """A runtime whose start fails unexpectedly with an error that quotes the instance's
    configuration, as an engine's "invalid environment variable" does."""

    inner: LocalProcessRuntime

    async def start(self, spec: InstanceSpec) -> Instance:
        raise RuntimeError(f"cannot take this environment: {sorted(spec.values.items())}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_unexpected_error_quoting_a_secret_value_is_masked_in_the_log_and_the_error(
    engine: AsyncEngine,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = f"canary-{secrets.token_hex(16)}"
    async with running_plant(engine, "inprocess", tmp_path, request) as plant:
        await plant.start_worker()
        await plant.deploy(BUILD_VALUES)
        await plant.wait_revision("Build", 1)
        for worker in plant.workers:
            await worker.drain()
        plant.workers.clear()
        with process_logging(caplog, "json") as stream:
            await plant.start_worker(runtime=QuotingRuntime(local_runtime(plant.runtime_dir)))
            promotion = await plant.promote({"GREETING": "visible", "API_KEY": canary})
            done = await plant.wait_promotion(promotion.id, within=60)
        async with plant.sessions() as session:
            [change] = (
                await session.exec(
                    select(DeploymentChange).where(DeploymentChange.promotion_id == promotion.id)
                )
            ).all()
    assert done.status is PromotionStatus.FAILED
    for error in (done.error, change.error):
        assert error is not None
        assert "('API_KEY', '[secret]')" in error, error
        assert "('GREETING', 'visible')" in error, error
        assert canary not in error

    text = stream.getvalue()
    assert canary not in text
    lines = json_lines(text)
    failed = [line for line in lines if "failed unexpectedly" in line["message"]]
    # The handler's failure, logged by the bus after the change's work ended, names the
    # change and masks its secret too.
    handler = [line for line in lines if line["message"].startswith("Handler failed")]
    assert len(failed) == len(handler) == DELIVERY_LIMIT
    for line in failed + handler:
        assert line["change_id"] == change.id
        assert line["promotion_id"] == promotion.id
        assert "('API_KEY', '[secret]')" in line["exception"], line
