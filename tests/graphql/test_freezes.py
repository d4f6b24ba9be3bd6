"""Freezes, through the API, on SQLite and PostgreSQL: who may freeze, and what a frozen
environment refuses. What happens to queued and running changes is in
tests/workers/test_governance_engine.py, where a worker runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DeploymentChange, User
from tests.graphql.governance import (
    DEPLOY,
    FREEZE,
    PLAN,
    RESTART,
    ROLLBACK,
    SET_CONFIGURATION,
    UNFREEZE,
    Attempt,
    World,
    expect,
    governed_world,
    production_changes,
    promote,
    reading,
    refused_without_change,
    set_policy,
)
from tests.graphql.queries import call
from tests.support.graphql_client import GraphQLClient


async def freeze(
    api: GraphQLClient,
    world: World,
    environment_id: str,
    reason: str,
    *,
    as_user: User | None = None,
) -> dict[str, Any]:
    return await call(
        api, FREEZE, {"id": environment_id, "reason": reason}, as_user=as_user or world.admin
    )


async def test_only_an_admin_freezes_and_says_why(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    m = world.members

    def freezing_as(user: User) -> Callable[[], Awaitable[dict[str, Any]]]:
        return lambda: freeze(api, world, world.production, "release", as_user=user)

    def unfreezing_as(user: User) -> Callable[[], Awaitable[dict[str, Any]]]:
        return lambda: call(api, UNFREEZE, {"id": world.production}, as_user=user)

    attempts: list[Attempt] = [
        (f"{name} freezes", freezing_as(m[name]), "ForbiddenError", None)
        for name in ("developer", "approver", "viewer")
    ]
    attempts += [
        (
            "another organization's admin freezes",
            lambda: freeze(api, world, world.production, "release", as_user=world.outsider),
            "NotFoundError",
            None,
        ),
        (
            "no reason",
            lambda: freeze(api, world, world.production, ""),
            "ValidationError",
            "reason",
        ),
        (
            "a blank reason",
            lambda: freeze(api, world, world.production, "   "),
            "ValidationError",
            "reason",
        ),
    ]
    await refused_without_change(api, world, attempts)

    frozen = expect(await freeze(api, world, world.production, "quarter close"), "Environment")
    assert (frozen["frozen"], frozen["freezeReason"]) == (True, "quarter close")
    await refused_without_change(
        api,
        world,
        [
            (f"{name} unfreezes", unfreezing_as(m[name]), "ForbiddenError", None)
            for name in ("developer", "approver", "viewer")
        ]
        + [
            (
                "another organization's admin unfreezes",
                unfreezing_as(world.outsider),
                "NotFoundError",
                None,
            )
        ],
    )
    thawed = expect(
        await call(api, UNFREEZE, {"id": world.production}, as_user=world.admin), "Environment"
    )
    assert (thawed["frozen"], thawed["freezeReason"]) == (False, None)


async def test_a_frozen_environment_refuses_promotions_deploys_restarts_and_rollbacks(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    expect(await freeze(api, world, world.production, "quarter close"), "Environment")
    expect(await freeze(api, world, world.development, "audit week"), "Environment")
    invoices = world.invoices
    dev = world.development

    def blocked(label: str, attempt: Any, reason: str) -> Attempt:
        return (label, attempt, "PromotionBlockedError", reason)

    await refused_without_change(
        api,
        world,
        [
            # Into a protected environment: not even filed as a request.
            blocked("promote", lambda: promote(api, world), "quarter close"),
            blocked(
                "deploy",
                lambda: call(
                    api,
                    DEPLOY,
                    {
                        "input": {
                            "integrationId": invoices.id,
                            "buildId": invoices.build_id,
                            "environmentId": dev,
                        }
                    },
                    as_user=world.developer,
                ),
                "audit week",
            ),
            blocked(
                "restart",
                lambda: call(
                    api, RESTART, {"id": invoices.source_deployment_id}, as_user=world.developer
                ),
                "audit week",
            ),
            blocked(
                "rollback",
                lambda: call(
                    api,
                    ROLLBACK,
                    {"input": {"deploymentId": invoices.source_deployment_id}},
                    as_user=world.developer,
                ),
                "audit week",
            ),
            blocked(
                "configuration with a restart",
                lambda: call(
                    api,
                    SET_CONFIGURATION,
                    {
                        "input": {
                            "integrationId": invoices.id,
                            "environmentId": dev,
                            "entries": [{"key": "GREETING", "value": "hi"}],
                            "restart": True,
                        }
                    },
                    as_user=world.developer,
                ),
                "audit week",
            ),
        ],
    )
    # Each refusal names the blocker, and the plan shows it.
    result = await promote(api, world)
    assert result["blockers"] == ["TARGET_FROZEN"]
    assert "Production is frozen: quarter close" in result["message"]
    restart = await call(
        api, RESTART, {"id": invoices.source_deployment_id}, as_user=world.developer
    )
    assert restart["blockers"] == ["TARGET_FROZEN"]
    plan = await api.execute(
        PLAN,
        {"input": {"integrationId": invoices.id, "sourceEnvironmentId": dev}},
        as_user=world.developer,
    )
    assert plan["promotionPlan"]["blockers"] == ["TARGET_FROZEN"]
    assert await production_changes(engine, world) == []
    async with reading(engine) as db:
        assert (await db.exec(select(DeploymentChange))).all() == []

    # A freeze holds what goes into the environment, not what leaves it: with Production
    # thawed, the frozen Development is still a source.
    expect(await call(api, UNFREEZE, {"id": world.production}, as_user=world.admin), "Environment")
    filed = expect(await promote(api, world), "Promotion")
    assert filed["status"] == "PENDING_APPROVAL"
    # And once Development thaws, restarts go in again.
    expect(await call(api, UNFREEZE, {"id": dev}, as_user=world.admin), "Environment")
    restarted = await call(
        api, RESTART, {"id": invoices.source_deployment_id}, as_user=world.developer
    )
    assert expect(restarted, "Deployment")["status"] == "ACTIVE"
