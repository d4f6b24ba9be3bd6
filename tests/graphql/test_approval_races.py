"""Two decisions on one request at the same moment: exactly one wins, and a request that ends
rejected or cancelled never runs."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ChangeStatus
from tests.graphql.governance import (
    APPROVE,
    CANCEL,
    REJECT,
    expect,
    governed_world,
    production_changes,
    promote,
    promotion,
    review,
    set_policy,
)
from tests.support.graphql_client import GraphQLClient


@pytest.mark.parametrize("other", ["reject", "cancel"])
async def test_an_approval_racing_another_decision_has_one_winner(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, other: str
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    filed = expect(await promote(api, world, integration=world.invoices), "Promotion")
    # The requester cancels; a second APPROVER rejects.
    other_user = world.members["approver2"] if other == "reject" else world.developer
    other_document = REJECT if other == "reject" else CANCEL
    for user in (world.approver, other_user):
        await api.token_for(user)  # tokens first, so the two requests start together

    approved, decided = await asyncio.gather(
        review(api, APPROVE, filed["id"], as_user=world.approver),
        review(api, other_document, filed["id"], as_user=other_user),
    )

    outcomes: list[dict[str, Any]] = [approved, decided]
    winners = [o for o in outcomes if o["__typename"] == "Promotion"]
    assert len(winners) == 1, outcomes
    loser = next(o for o in outcomes if o["__typename"] != "Promotion")
    assert loser["__typename"] == "ConflictError"

    final = await promotion(api, world, filed["id"])
    changes = [c for c in await production_changes(engine, world) if c.promotion_id == filed["id"]]
    if winners[0] is approved:
        assert final["status"] == "QUEUED"
        assert [c.status for c in changes] == [ChangeStatus.QUEUED]
    else:
        assert final["status"] == ("REJECTED" if other == "reject" else "CANCELLED")
        assert changes == []
        assert "QUEUED" not in [e["status"] for e in final["events"]]
