"""An organization set up through the services, for tests that call the services directly.

``set_up_acme`` makes ``acme``: environments Development, Staging and Production on the
pipeline Release (the default; Sandbox, a fourth environment, is in no project's pipeline),
one member per role (two DEVELOPERs and two APPROVERs, so that "another developer" and "a
second approval" exist), the project Billing with the integration Greeter and its builds 1.0
and 2.0, and ``outsider``, the ADMIN of another organization. Nothing runs anywhere yet:
``record_run`` writes what a worker leaves once a change has run.

Each call under test runs as one API request runs it (``Acme.run``): in a session of its own,
committed when the service returns and rolled back when it raises.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.models import (
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Integration,
    OutboxMessage,
    Promotion,
    PromotionEvent,
    RevisionCause,
    Role,
    User,
)
from app.models.base import utcnow
from app.services.approval_policies import PolicyInput, set_approval_policy
from app.services.configuration import (
    ConfigEntry,
    ConfigKey,
    ConfigType,
    effective_values,
    plaintext_values,
    schema_of,
    set_configuration,
)
from app.services.environments import create_environment, freeze_environment
from app.services.errors import DomainError
from app.services.events import deployment_routing_key, promotion_routing_key
from app.services.members import add_member, find_or_create_user
from app.services.organizations import create_organization
from app.services.pipelines import create_pipeline
from app.services.projects import create_build, create_integration, create_project
from tests.support.rows import every_row

T = TypeVar("T")
Refusal = TypeVar("Refusal", bound=DomainError)
Call = Callable[[AsyncSession, User], Awaitable[T]]

# Two required keys without a default (one of them secret), one with a default, one optional.
SCHEMA = (
    ConfigKey("GREETING"),
    ConfigKey("API_KEY", secret=True),
    ConfigKey("REPEAT", ConfigType.INT, required=False, default_value="1"),
    ConfigKey("COLOR", required=False),
)
# What every required key needs, for tests about something else than missing values.
COMPLETE: dict[str, str | None] = {"GREETING": "hello", "API_KEY": "s3cret"}

PIPELINE = ("Development", "Staging", "Production")
OUTSIDE_THE_PIPELINE = "Sandbox"
MEMBERS = {
    "developer": Role.DEVELOPER,
    "developer2": Role.DEVELOPER,
    "approver": Role.APPROVER,
    "approver2": Role.APPROVER,
    "viewer": Role.VIEWER,
}


@dataclass
class Acme:
    engine: AsyncEngine
    box: SecretBox
    id: str
    slug: str
    users: dict[str, str]  # "admin", the MEMBERS, "outsider" -> user id
    environments: dict[str, str]  # name -> id
    pipeline_id: str
    project_id: str
    integration_id: str
    builds: dict[str, str]  # version -> id

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with create_session_factory(self.engine)() as session:
            yield session

    async def run(self, who: str, call: Call[T]) -> T:
        """``call`` as the user ``who``, in one transaction as one API request runs it:
        committed when it returns, rolled back when it raises."""
        async with self.session() as session:
            actor = await session.get(User, self.users[who])
            assert actor is not None
            try:
                result = await call(session, actor)
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
            return result

    async def refuses(self, who: str, call: Call[object], error: type[Refusal]) -> Refusal:
        """The domain error ``call`` raises as ``who``, once the database is checked to be
        exactly as it was before the call (every row of every table)."""
        before = await every_row(self.engine)
        with pytest.raises(error) as raised:
            await self.run(who, call)
        assert await every_row(self.engine) == before
        return raised.value

    async def deployment(self, environment: str) -> Deployment:
        """The integration's deployment in the environment, as committed."""
        async with self.session() as session:
            return await _deployment(session, self, environment)

    async def promotion(self, promotion_id: str) -> Promotion:
        async with self.session() as session:
            promotion = await session.get(Promotion, promotion_id)
            assert promotion is not None
            return promotion

    async def changes(self, environment: str) -> list[DeploymentChange]:
        """The changes of the integration's deployment in the environment, oldest first."""
        deployment = await self.deployment(environment)
        async with self.session() as session:
            return list(
                (
                    await session.exec(
                        select(DeploymentChange)
                        .where(DeploymentChange.deployment_id == deployment.id)
                        .order_by(col(DeploymentChange.id))
                    )
                ).all()
            )

    async def values(self, environment: str) -> dict[str, str]:
        """The environment's stored configuration, secrets opened."""
        deployment = await self.deployment(environment)
        async with self.session() as session:
            return await plaintext_values(session, box=self.box, deployment_id=deployment.id)

    async def configure(self, environment: str, values: dict[str, str | None]) -> None:
        """Store values in the environment, as the admin."""
        await self.run(
            "admin",
            lambda session, admin: set_configuration(
                session,
                actor=admin,
                box=self.box,
                integration_id=self.integration_id,
                environment_id=self.environments[environment],
                entries=[ConfigEntry(key=k, value=v) for k, v in values.items()],
            ),
        )

    async def freeze(self, environment: str, reason: str = "release week") -> None:
        await self.run(
            "admin",
            lambda session, admin: freeze_environment(
                session, actor=admin, environment_id=self.environments[environment], reason=reason
            ),
        )

    async def protect(self, environment: str, required_approvals: int = 1, **policy: Any) -> None:
        """An approval policy on the environment, set by the admin (``policy``: the other
        fields of ``PolicyInput``)."""
        await self.run(
            "admin",
            lambda session, admin: set_approval_policy(
                session,
                actor=admin,
                policy=PolicyInput(
                    environment_id=self.environments[environment],
                    required_approvals=required_approvals,
                    **policy,
                ),
            ),
        )


async def _deployment(
    session: AsyncSession, acme: Acme, environment: str, integration_id: str | None = None
) -> Deployment:
    return (
        await session.exec(
            select(Deployment).where(
                Deployment.integration_id == (integration_id or acme.integration_id),
                Deployment.environment_id == acme.environments[environment],
            )
        )
    ).one()


# The installation key of every acme of a test process, so that what a starting point seals
# (secret values, configuration snapshots) opens in each test that copies it.
BOX = SecretBox(Fernet.generate_key().decode())
Preparation = Callable[["Acme"], Awaitable[None]]
# On SQLite, acme (and each starting point made from it) is set up once per test process and
# each test's database file becomes a copy of it, as tests/conftest.py's sqlite_template does
# for the migrations: setting acme up sends 96 statements, about 0.4 s on a loaded 2-core
# machine; a copy takes 1 ms.
_copies: dict[Preparation | None, tuple[Path, Acme]] = {}


async def set_up_acme(engine: AsyncEngine, then: Preparation | None = None) -> Acme:
    """acme, and ``then`` done to it: a test's starting point (runs recorded, values stored).
    ``then`` is a module-level function: on SQLite its starting point is kept by identity."""
    if engine.dialect.name != "sqlite":
        acme = await _set_up(engine)
        if then is not None:
            await then(acme)
        return acme
    path = Path(str(engine.url.database))
    if then in _copies:
        template, acme = _copies[then]
        await engine.dispose()
        for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(template, path)
        return dataclasses.replace(acme, engine=engine)
    if then is None:
        acme = await _set_up(engine)
    else:
        acme = await set_up_acme(engine)
        await then(acme)
    await engine.dispose()  # the last connection closes: the WAL is checkpointed
    # Beside the test's database, in pytest's temporary directory, which outlives the session.
    template = path.with_name(f"acme-{len(_copies)}.db")
    shutil.copyfile(path, template)
    _copies[then] = (template, acme)
    return acme


async def _set_up(engine: AsyncEngine) -> Acme:
    async with create_session_factory(engine)() as session:
        admin = await find_or_create_user(session, email="admin@acme.example.com", name=None)
        org = await create_organization(session, actor=admin, slug="acme", name="Acme")
        users = {"admin": admin.id}
        for name, role in MEMBERS.items():
            membership = await add_member(
                session,
                actor=admin,
                organization_id=org.id,
                email=f"{name}@acme.example.com",
                name=None,
                role=role,
            )
            users[name] = membership.user_id
        outsider = await find_or_create_user(session, email="eve@globex.example.com", name=None)
        await create_organization(session, actor=outsider, slug="globex", name="Globex")
        users["outsider"] = outsider.id
        await create_environment(
            session,
            actor=admin,
            organization_id=org.id,
            name="Staging",
            dns_prefix="stg",
            position=1,
        )
        await create_environment(
            session,
            actor=admin,
            organization_id=org.id,
            name=OUTSIDE_THE_PIPELINE,
            dns_prefix="sbx",
        )
        environments = {
            env.name: env.id
            for env in (
                await session.exec(select(Environment).where(Environment.organization_id == org.id))
            ).all()
        }
        pipeline = await create_pipeline(
            session,
            actor=admin,
            organization_id=org.id,
            name="Release",
            environment_ids=[environments[name] for name in PIPELINE],
            is_default=True,
        )
        project = await create_project(
            session, actor=admin, organization_id=org.id, name="Billing", pipeline_id=pipeline.id
        )
        integration = await create_integration(
            session, actor=admin, project_id=project.id, name="Greeter", config_schema=SCHEMA
        )
        builds = {}
        for version in ("1.0", "2.0"):
            build = await create_build(
                session,
                actor=admin,
                integration_id=integration.id,
                version=version,
                artifact="true",
            )
            builds[version] = build.id
        await session.commit()
        return Acme(
            engine=engine,
            box=BOX,
            id=org.id,
            slug=org.slug,
            users=users,
            environments=environments,
            pipeline_id=pipeline.id,
            project_id=project.id,
            integration_id=integration.id,
            builds=builds,
        )


async def record_run(
    acme: Acme,
    environment: str,
    version: str,
    *,
    values: dict[str, str | None] | None = None,
    kind: ChangeKind = ChangeKind.DEPLOY,
    integration_id: str | None = None,
    build_id: str | None = None,
) -> Deployment:
    """Store ``values`` in the environment (as the admin), then write what a worker leaves once
    a change that runs the build with the environment's values has succeeded: the change,
    SUCCEEDED with its configuration snapshot, the next revision, and the deployment ACTIVE
    with that build. A promotion needs an ACTIVE source, a restart or a rollback something
    that ran; getting there through the step machine is the workers' tests' subject.
    ``integration_id`` and ``build_id``: another integration of acme's than the greeter (its
    values are not stored), running that build."""
    if values:
        await acme.configure(environment, values)
    integration_id = integration_id or acme.integration_id
    build_id = build_id or acme.builds[version]
    async with acme.session() as session:
        deployment = await _deployment(session, acme, environment, integration_id)
        integration = await session.get(Integration, integration_id)
        assert integration is not None
        applied = await plaintext_values(session, box=acme.box, deployment_id=deployment.id)
        snapshot = acme.box.seal_json(applied)
        digest = acme.box.digest(effective_values(schema_of(integration), applied))
        change = DeploymentChange(
            organization_id=acme.id,
            deployment_id=deployment.id,
            kind=kind,
            status=ChangeStatus.SUCCEEDED,
            build_id=build_id,
            snapshot_sealed=snapshot,
            snapshot_digest=digest,
            snapshot_config_version=deployment.config_version,
            actor_id=acme.users["admin"],
            finished_at=utcnow(),
        )
        session.add(change)
        await session.flush()
        deployment.revision += 1
        session.add(
            DeploymentRevision(
                deployment_id=deployment.id,
                revision=deployment.revision,
                build_id=build_id,
                configuration_digest=digest,
                snapshot_sealed=snapshot,
                cause=RevisionCause(kind.value),
                change_id=change.id,
                actor_id=acme.users["admin"],
            )
        )
        deployment.status = DeploymentStatus.ACTIVE
        deployment.build_id = build_id
        deployment.running_change_id = change.id
        deployment.applied_config_version = deployment.config_version
        deployment.endpoint_url = f"http://gateway.test/acme/{environment.lower()}/greeter/"
        session.add(deployment)
        await session.commit()
        return deployment


async def set_status(acme: Acme, environment: str, status: DeploymentStatus) -> None:
    """Put the deployment in a status directly (an instance that stopped for good, say)."""
    async with acme.session() as session:
        deployment = await _deployment(session, acme, environment)
        deployment.status = status
        session.add(deployment)
        await session.commit()


async def outbox(acme: Acme, exchange: str) -> list[OutboxMessage]:
    """The outbox rows to ``exchange`` ("command" or "event"), oldest first."""
    async with acme.session() as session:
        return list(
            (
                await session.exec(
                    select(OutboxMessage)
                    .where(OutboxMessage.exchange == exchange)
                    .order_by(col(OutboxMessage.id))
                )
            ).all()
        )


async def told_the_workers(acme: Acme, change: DeploymentChange) -> bool:
    """Whether the outbox holds the command that tells the local data plane about the change."""
    return any(
        message.routing_key == "local"
        and message.body == {"change_id": change.id, "deployment_id": change.deployment_id}
        for message in await outbox(acme, "command")
    )


async def deployment_events(acme: Acme, environment: str) -> list[tuple[str, str | None]]:
    """The events of the integration's deployment in the environment, as the outbox holds
    them: (status, detail), oldest first."""
    key = deployment_routing_key(acme.environments[environment], acme.integration_id)
    return [
        (message.body["status"], message.body["detail"])
        for message in await outbox(acme, "event")
        if message.routing_key == key
    ]


@dataclass(frozen=True)
class Announced:
    """A promotion's status history, as its events have it and as its outbox rows tell it."""

    events: list[str]
    outbox: list[str]


def announced_as(*statuses: str) -> Announced:
    """Each status once as an event and once as an outbox row, in this order."""
    return Announced(events=list(statuses), outbox=list(statuses))


async def announced(acme: Acme, promotion_id: str) -> Announced:
    async with acme.session() as session:
        events = (
            await session.exec(
                select(PromotionEvent.status)
                .where(PromotionEvent.promotion_id == promotion_id)
                .order_by(col(PromotionEvent.id))
            )
        ).all()
        messages = (
            await session.exec(
                select(OutboxMessage)
                .where(
                    OutboxMessage.exchange == "event",
                    OutboxMessage.routing_key == promotion_routing_key(promotion_id),
                )
                .order_by(col(OutboxMessage.id))
            )
        ).all()
        return Announced(
            events=[str(status) for status in events],
            outbox=[message.body["status"] for message in messages],
        )
