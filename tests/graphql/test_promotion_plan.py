"""promotionPlan never tells whether a secret equals a guess."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.graphql.governance import SECRET_KEY, SET_CONFIGURATION, expect, governed_world
from tests.support.graphql_client import GraphQLClient

PLAN_CHANGES = """
query($input: PromoteInput!) {
    promotionPlan(input: $input) { configurationChanges { key secret before after kind } }
}
"""


async def test_a_secret_override_reads_changed_whether_or_not_it_matches(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    stored = "the-stored-secret"
    result = await api.execute(
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": world.invoices.id,
                "environmentId": world.production,
                "entries": [{"key": SECRET_KEY, "value": stored}],
            }
        },
        as_user=world.developer,
    )
    expect(result["setConfiguration"], "Deployment")

    async def secret_change(overrides: list[dict[str, str]]) -> dict[str, Any]:
        data = await api.execute(
            PLAN_CHANGES,
            {
                "input": {
                    "integrationId": world.invoices.id,
                    "sourceEnvironmentId": world.development,
                    "overrides": overrides,
                }
            },
            as_user=world.developer,
        )
        changes = data["promotionPlan"]["configurationChanges"]
        change: dict[str, Any] = next(c for c in changes if c["key"] == SECRET_KEY)
        return change

    right_guess = await secret_change([{"key": SECRET_KEY, "value": stored}])
    wrong_guess = await secret_change([{"key": SECRET_KEY, "value": "a-wrong-guess"}])
    untouched = await secret_change([])
    assert (
        right_guess
        == wrong_guess
        == {
            "key": SECRET_KEY,
            "secret": True,
            "before": None,
            "after": None,
            "kind": "CHANGED",
        }
    )
    assert untouched["kind"] == "UNCHANGED"
