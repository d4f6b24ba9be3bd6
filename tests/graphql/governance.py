"""Shared setup and GraphQL documents for the governance tests (approvals, freezes, audit).

``governed_world`` builds, through the API, an organization ``acme`` whose default pipeline is
Development -> Production, with one member per role (two DEVELOPERs and two APPROVERs, so that
"another developer" and "a second approval" exist), two integrations with a secret key in their
config schema, a build each, and the integrations ACTIVE in Development. ``globex`` is another
organization; its admin is the outsider.

The engine part (``running_engine``, with the ``FakeRuntime`` of tests/support/runtimes.py)
runs the real step machine in-process: the worker consumes the in-process bus, the outbox relay
carries the commands the API wrote, and the runtime is a test double that starts nothing (the
subject here is governance, not processes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.main import create_app
from app.messaging.inprocess import InProcessBus
from app.messaging.outbox import OutboxRelay
from app.models import (
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Promotion,
    Role,
    User,
)
from app.processes.api import api_server
from app.services.dataplanes import INSTALLATION_LOCAL
from app.settings import Settings
from tests.graphql.queries import (
    ADD_MEMBER,
    Org,
    call,
    create_build,
    create_integration,
    create_org,
    create_project,
    mutation,
    ok,
)
from tests.processes import free_port
from tests.support.graphql_client import GraphQLClient
from tests.support.graphql_ws import WsClient
from tests.support.organizations import make_user

# FakeRuntime is re-exported ("as"): tests/workers import it from here.
from tests.support.runtimes import FakeRuntime as FakeRuntime
from tests.support.waiting import eventually
from workers.planes import always
from workers.service import Worker

# ---- documents -----------------------------------------------------------------------------

PROMOTION_FIELDS = """
    ... on Promotion {
        id status requiredApprovals error requestMessage: message finishedAt
        build { id version }
        requestedBy { email }
        targetEnvironment { name }
        overrides { key value secret }
        reviews { decision comment reviewer { email } }
        events { status detail }
    }
"""
POLICY_FIELDS = """
    ... on Environment {
        id frozen freezeReason
        approvalPolicy {
            requiredApprovals approverRoles allowSelfApproval expiresAfterHours
            approvers { email }
        }
    }
"""
DEPLOYMENT_FIELDS = """
    ... on Deployment { id status revision }
    ... on PromotionBlockedError { blockers }
"""

PROMOTE = mutation(
    "$input: PromoteInput!",
    "promote(input: $input)",
    PROMOTION_FIELDS + "... on PromotionBlockedError { blockers }",
)
APPROVE = mutation(
    "$id: ID!, $comment: String",
    "approvePromotion(id: $id, comment: $comment)",
    PROMOTION_FIELDS,
)
REJECT = mutation(
    "$id: ID!, $comment: String", "rejectPromotion(id: $id, comment: $comment)", PROMOTION_FIELDS
)
CANCEL = mutation("$id: ID!", "cancelPromotion(id: $id)", PROMOTION_FIELDS)
SET_POLICY = mutation(
    "$input: ApprovalPolicyInput!", "setApprovalPolicy(input: $input)", POLICY_FIELDS
)
REMOVE_POLICY = mutation(
    "$environmentId: ID!", "removeApprovalPolicy(environmentId: $environmentId)", POLICY_FIELDS
)
FREEZE = mutation(
    "$id: ID!, $reason: String!", "freezeEnvironment(id: $id, reason: $reason)", POLICY_FIELDS
)
UNFREEZE = mutation("$id: ID!", "unfreezeEnvironment(id: $id)", POLICY_FIELDS)
DEPLOY = mutation("$input: DeployInput!", "deploy(input: $input)", DEPLOYMENT_FIELDS)
RESTART = mutation("$id: ID!", "restartDeployment(id: $id)", DEPLOYMENT_FIELDS)
ROLLBACK = mutation("$input: RollbackInput!", "rollback(input: $input)", DEPLOYMENT_FIELDS)
SET_CONFIGURATION = mutation(
    "$input: SetConfigurationInput!", "setConfiguration(input: $input)", DEPLOYMENT_FIELDS
)

PROMOTION = f"query($id: ID!) {{ promotion(id: $id) {{ __typename {PROMOTION_FIELDS} }} }}"
PLAN = """
query($input: PromoteInput!) {
    promotionPlan(input: $input) { requiresApproval blockers targetEnvironment { name } }
}
"""
PENDING_APPROVALS = """
query($slug: String!, $first: Int, $after: String) {
    organization(slug: $slug) {
        pendingApprovals(first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage endCursor }
            edges { node { id status integration { name } requestedBy { email } } }
        }
    }
}
"""
AUDIT_LOG = """
query($slug: String!, $first: Int, $after: String) {
    organization(slug: $slug) {
        auditLog(first: $first, after: $after) {
            totalCount
            pageInfo { hasNextPage endCursor }
            edges { cursor node { id action subjectId detail at actor { email } } }
        }
    }
}
"""
# Everything the governance mutations can change, read as the admin: a refusal must leave it
# exactly as it was (audit log included: a refused mutation records nothing).
STATE = """
query($slug: String!) {
    organization(slug: $slug) {
        environments {
            name frozen freezeReason
            approvalPolicy {
                requiredApprovals approverRoles allowSelfApproval expiresAfterHours
                approvers { email }
            }
        }
        projects(first: 10) { edges { node { integrations(first: 10) { edges { node {
            name
            deployments { id environment { name } status revision build { version } }
            promotions(first: 100) { totalCount edges { node {
                id status requiredApprovals error
                reviews { decision comment reviewer { email } }
                events { status }
            } } }
        } } } } } }
        pendingApprovals(first: 100) { totalCount }
        auditLog(first: 1) { totalCount }
    }
}
"""

SECRET_KEY = "API_TOKEN"
CONFIG_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": False},
    {"key": SECRET_KEY, "type": "STRING", "required": False, "secret": True},
]


# ---- the world -----------------------------------------------------------------------------


@dataclass
class Integration:
    id: str
    name: str
    build_id: str
    source_deployment_id: str = ""


@dataclass
class World:
    org: Org
    other: Org
    members: dict[str, User]  # "developer", "developer2", "approver", "approver2", "viewer"
    integrations: list[Integration]
    development: str
    production: str

    @property
    def admin(self) -> User:
        return self.org.admin

    @property
    def outsider(self) -> User:
        return self.other.admin

    @property
    def developer(self) -> User:
        return self.members["developer"]

    @property
    def approver(self) -> User:
        return self.members["approver"]

    @property
    def invoices(self) -> Integration:
        return self.integrations[0]

    @property
    def payments(self) -> Integration:
        return self.integrations[1]


MEMBERS = {
    "developer": Role.DEVELOPER,
    "developer2": Role.DEVELOPER,
    "approver": Role.APPROVER,
    "approver2": Role.APPROVER,
    "viewer": Role.VIEWER,
}


async def add_member(
    api: GraphQLClient, session: AsyncSession, org: Org, name: str, role: Role
) -> User:
    user = await make_user(session, f"{name}@{org.slug}.example.com")
    await ok(
        api,
        ADD_MEMBER,
        {"input": {"organizationId": org.id, "email": user.email, "role": role.value}},
        as_user=org.admin,
        typename="Membership",
    )
    return user


async def make_active(
    session: AsyncSession, *, integration_id: str, environment_id: str, build_id: str
) -> str:
    """Put the integration ACTIVE in the environment, running the build at revision 1, directly
    in the database. A promotion only needs an ACTIVE source; getting one through a deploy would
    need a worker and a runtime, which the API tests do not run (the engine tests do)."""
    result = await session.exec(
        update(Deployment)
        .where(
            col(Deployment.integration_id) == integration_id,
            col(Deployment.environment_id) == environment_id,
        )
        .values(status=DeploymentStatus.ACTIVE, build_id=build_id, revision=1)
    )
    assert result.rowcount == 1
    await session.commit()
    deployment_id = (
        await session.exec(
            select(Deployment.id).where(
                Deployment.integration_id == integration_id,
                Deployment.environment_id == environment_id,
            )
        )
    ).one()
    await session.commit()
    return deployment_id


async def governed_world(api: GraphQLClient, session: AsyncSession) -> World:
    org = await create_org(api, session, "acme")
    other = await create_org(api, session, "globex")
    members = {
        name: await add_member(api, session, org, name, role) for name, role in MEMBERS.items()
    }
    project = await create_project(api, org, "Billing")
    integrations = []
    for name in ("Invoices", "Payments"):
        integration_id = await create_integration(
            api, org, project["id"], name, config_schema=CONFIG_SCHEMA
        )
        build = await create_build(api, org, integration_id, "1.0.0")
        integration = Integration(id=integration_id, name=name, build_id=build["id"])
        integration.source_deployment_id = await make_active(
            session,
            integration_id=integration_id,
            environment_id=org.environments["Development"],
            build_id=build["id"],
        )
        integrations.append(integration)
    return World(
        org=org,
        other=other,
        members=members,
        integrations=integrations,
        development=org.environments["Development"],
        production=org.environments["Production"],
    )


# ---- actions -------------------------------------------------------------------------------


async def set_policy(
    api: GraphQLClient,
    world: World,
    *,
    required: int = 1,
    as_user: User | None = None,
    environment_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return await call(
        api,
        SET_POLICY,
        {
            "input": {
                "environmentId": environment_id or world.production,
                "requiredApprovals": required,
                **fields,
            }
        },
        as_user=as_user or world.admin,
    )


async def promote(
    api: GraphQLClient,
    world: World,
    *,
    as_user: User | None = None,
    integration: Integration | None = None,
    overrides: list[dict[str, str | None]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    integration = integration or world.invoices
    return await call(
        api,
        PROMOTE,
        {
            "input": {
                "integrationId": integration.id,
                "sourceEnvironmentId": world.development,
                "overrides": overrides or [],
                **fields,
            }
        },
        as_user=as_user or world.developer,
    )


async def review(
    api: GraphQLClient,
    document: str,
    promotion_id: str,
    *,
    as_user: User,
    comment: str | None = None,
) -> dict[str, Any]:
    """approve, reject or cancel (``document``) the promotion as ``as_user``."""
    variables: dict[str, Any] = {"id": promotion_id}
    if document is not CANCEL:
        variables["comment"] = comment
    return await call(api, document, variables, as_user=as_user)


async def promotion(api: GraphQLClient, world: World, promotion_id: str) -> dict[str, Any]:
    data = await api.execute(PROMOTION, {"id": promotion_id}, as_user=world.admin)
    result: dict[str, Any] = data["promotion"]
    assert result is not None
    return result


async def state(api: GraphQLClient, world: World) -> dict[str, Any]:
    data = await api.execute(STATE, {"slug": world.org.slug}, as_user=world.admin)
    result: dict[str, Any] = data["organization"]
    return result


async def deployment_in(
    api: GraphQLClient, world: World, integration: str, environment: str
) -> dict[str, Any]:
    """The integration's deployment in the environment (status, revision, build), by name."""
    current = await state(api, world)
    for project in current["projects"]["edges"]:
        for edge in project["node"]["integrations"]["edges"]:
            if edge["node"]["name"] != integration:
                continue
            for deployment in edge["node"]["deployments"]:
                if deployment["environment"]["name"] == environment:
                    result: dict[str, Any] = deployment
                    return result
    raise AssertionError(f"no deployment of {integration} in {environment}")


def expect(result: dict[str, Any], typename: str, mentions: str | None = None) -> dict[str, Any]:
    """The mutation's result is ``typename``; an error's message names ``mentions``."""
    assert result["__typename"] == typename, result
    if typename.endswith("Error"):
        assert result["message"], result
        if mentions is not None:
            assert mentions in result["message"], result
    return result


Attempt = tuple[str, Callable[[], Awaitable[dict[str, Any]]], str, str | None]


def acting(
    api: GraphQLClient, document: str, promotion_id: str, user: User
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An attempt to approve, reject or cancel (``document``) the promotion as ``user``."""
    return lambda: review(api, document, promotion_id, as_user=user)


async def refused_without_change(
    api: GraphQLClient, world: World, attempts: Sequence[Attempt]
) -> None:
    """Each attempt (label, call, error type, words its message must contain) is refused with
    that error type, and none of them changes anything the admin can see."""
    before = await state(api, world)
    for label, attempt, error, mentions in attempts:
        result = await attempt()
        assert result["__typename"] == error, (label, result)
        assert result["message"], (label, result)
        if mentions is not None:
            assert mentions in result["message"], (label, result)
    assert await state(api, world) == before


@contextlib.asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session of its own for reading what the API committed (the ``session`` fixture holds
    the test's users: rolling it back would expire them)."""
    async with create_session_factory(engine)() as session:
        yield session


async def production_changes(engine: AsyncEngine, world: World) -> list[DeploymentChange]:
    """The changes queued for any integration in Production, read from the database."""
    async with reading(engine) as session:
        rows = await session.exec(
            select(DeploymentChange)
            .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
            .where(Deployment.environment_id == world.production)
        )
        return list(rows.all())


async def promotion_row(engine: AsyncEngine, promotion_id: str) -> Promotion:
    async with reading(engine) as session:
        return (await session.exec(select(Promotion).where(Promotion.id == promotion_id))).one()


# ---- the engine, in-process ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_engine(
    engine: AsyncEngine, box: SecretBox, runtime: FakeRuntime
) -> AsyncIterator[None]:
    """The worker of the ``local`` data plane with the outbox relay, on the in-process bus, as
    ``promenade up`` wires them (app/cli.py ``_up``), until the block ends."""
    bus = InProcessBus(retry_delay=0.05)
    sessions = create_session_factory(engine)
    relay = OutboxRelay(sessions, bus, poll_interval=0.05)
    relaying = asyncio.create_task(relay.run())
    worker = Worker(
        sessions=sessions,
        box=box,
        bus=bus,
        runtime_for=always(runtime),
        planes=[INSTALLATION_LOCAL],
        concurrency=2,
        after_commit=relay.wake,
    )
    await worker.start()
    try:
        yield
    finally:
        await worker.drain()
        await relay.stop()
        await relaying
        await bus.close()


async def status_becomes(
    api: GraphQLClient, world: World, promotion_id: str, status: str, *, within: float = 15.0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        latest = await promotion(api, world, promotion_id)
        return latest if latest["status"] == status else None

    return await eventually(reached, within=within, what=f"promotion {promotion_id} {status}")


# ---- live: the API served by uvicorn, its subscriptions fed by the bus -----------------------


@dataclass
class Live:
    url: str
    api: GraphQLClient


@contextlib.asynccontextmanager
async def live_api(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, data_dir: Any, **settings: Any
) -> AsyncIterator[Live]:
    """The app served by uvicorn on a free port, on the in-process bus: its lifespan runs the
    outbox relay and the event hub, as in ``promenade up``."""
    bus = InProcessBus()
    configured = Settings(data_dir=data_dir, secret_key=secret_key, **settings)
    app = create_app(configured, engine=engine, bus=bus, owns_bus=True)
    port = free_port()
    server = api_server(app, configured, host="127.0.0.1", port=port, access_log=False)
    await server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30) as http:
            yield Live(url=url, api=GraphQLClient(http, session))
    finally:
        await server.stop()


class Subscription:
    """One graphql-transport-ws connection (tests/support/graphql_ws.py) with one
    subscription."""

    def __init__(self, client: WsClient, operation_id: str) -> None:
        self.client = client
        self.operation_id = operation_id

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, live: Live, user: User, query: str, variables: dict[str, Any]
    ) -> AsyncIterator[Subscription]:
        async with WsClient.connect(live.url, await live.api.token_for(user)) as client:
            yield cls(client, await client.subscribe(query, variables))

    async def message(self, within: float = 10) -> dict[str, Any]:
        """The next message of the subscription (pings answered)."""
        return await self.client.message(self.operation_id, within)
