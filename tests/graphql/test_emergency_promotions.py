"""Break-glass through the API: ``promote(input: {emergency: {reason}})`` by an ADMIN goes past
the reviews of a protected environment, shows as an emergency on the promotion, and the
environment's reviewers hear of it through ``approvalRequests``; a DEVELOPER's is FORBIDDEN, a
blank reason a ValidationError, and neither writes anything."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from tests.graphql.governance import (
    Subscription,
    expect,
    governed_world,
    live_api,
    promote,
    set_policy,
)
from tests.support.rows import every_row

REASON = "INC-4711: orders are lost"

HEARD = """
subscription($organizationId: ID!) {
    approvalRequests(organizationId: $organizationId) { id status emergency { reason } }
}
"""


async def rows_but_tokens(engine: AsyncEngine) -> dict[str, object]:
    """Every row but the API tokens (each call as a user issues one)."""
    return {name: rows for name, rows in (await every_row(engine)).items() if name != "api_tokens"}


async def test_an_admin_breaks_the_glass_and_the_reviewers_hear_of_it(
    session: AsyncSession, engine: AsyncEngine, secret_key: str, tmp_path: Path
) -> None:
    async with live_api(engine, session, secret_key, tmp_path) as live:
        world = await governed_world(live.api, session)
        variables = {"organizationId": world.org.id}
        await set_policy(live.api, world, required=2, environment_id=world.production)
        async with Subscription.open(live, world.approver, HEARD, variables) as approver:
            before = await rows_but_tokens(engine)
            for as_user, reason, typename in (
                (world.developer, REASON, "ForbiddenError"),
                (world.admin, "  ", "ValidationError"),
            ):
                refused = await promote(
                    live.api,
                    world,
                    as_user=as_user,
                    targetEnvironmentId=world.production,
                    emergency={"reason": reason},
                )
                assert refused["__typename"] == typename, refused
            assert await rows_but_tokens(engine) == before  # nothing written

            result = await promote(
                live.api,
                world,
                as_user=world.admin,
                targetEnvironmentId=world.production,
                emergency={"reason": REASON},
            )
            promotion = expect(result, "Promotion")
            assert promotion["status"] == "QUEUED"  # past the two reviews
            assert promotion["events"][0]["detail"].startswith(f"EMERGENCY ({REASON})")

            message = await approver.message()
            assert message["type"] == "next", message
            heard = message["payload"]["data"]["approvalRequests"]
            assert heard["id"] == promotion["id"]
            assert heard["emergency"] == {"reason": REASON}
