"""Refusals found in review: a late approval, a restart with nothing to run, secrets in logs."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, DeploymentStatus, Promotion
from app.models.base import utcnow
from tests.graphql.governance import (
    APPROVE,
    RESTART,
    expect,
    governed_world,
    promote,
    promotion,
    review,
    set_policy,
)
from tests.support.graphql_client import GraphQLClient


async def test_a_request_past_its_expiry_cannot_be_approved_before_the_sweep(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1, expiresAfterHours=1)
    filed = expect(await promote(api, world), "Promotion")
    # As if the hour had passed and the sweep had not come by yet.
    await session.exec(
        update(Promotion)
        .where(col(Promotion.id) == filed["id"])
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    await session.commit()

    late = await review(api, APPROVE, filed["id"], as_user=world.approver)
    expect(late, "ConflictError", mentions="expired")
    assert (await promotion(api, world, filed["id"]))["status"] == "PENDING_APPROVAL"


async def test_a_restart_where_no_build_ever_ran_is_refused(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    # A first deploy that failed leaves the deployment in ERROR with no build (set directly:
    # no worker runs in this test).
    production = (
        await session.exec(
            update(Deployment)
            .where(
                col(Deployment.integration_id) == world.invoices.id,
                col(Deployment.environment_id) == world.production,
            )
            .values(status=DeploymentStatus.ERROR, build_id=None)
            .returning(col(Deployment.id))
        )
    ).one()
    await session.commit()

    refused = await api.execute(RESTART, {"id": production[0]}, as_user=world.developer)
    expect(refused["restartDeployment"], "ValidationError", mentions="no build has run")


@pytest.mark.parametrize("mistake", ["unknown field", "typo in the query"])
async def test_a_bad_request_carrying_a_secret_leaves_it_out_of_the_log(
    api: GraphQLClient, session: AsyncSession, caplog: pytest.LogCaptureFixture, mistake: str
) -> None:
    world = await governed_world(api, session)
    canary = "CANARY-do-not-log-4242"
    caplog.set_level(logging.DEBUG)
    entry = {"key": "API_TOKEN", "value": canary}
    if mistake == "unknown field":
        query = """mutation($input: SetConfigurationInput!) {
            setConfiguration(input: $input) { __typename } }"""
        variables = {
            "input": {
                "integrationId": world.invoices.id,
                "environmentId": world.production,
                "entries": [{**entry, "secret": True}],
            }
        }
    else:
        query = f"""mutation {{ setConfiguration(input: {{integrationId: "{world.invoices.id}",
            environmentId: "{world.production}",
            entries: [{{key: "API_TOKEN", value: "{canary}"}}]}}) {{ __typenamme }} }}"""
        variables = {}
    body = await api.raw(query, variables, as_user=world.developer)
    assert body.get("errors"), body
    assert canary not in caplog.text
