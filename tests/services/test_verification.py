"""Verification checks as stored: each bad field is refused naming it (and nothing is stored);
what passes is kept as given, and a run's summary names each failing check's last answer."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, User
from app.services.errors import Forbidden, InvalidInput
from app.services.verification import (
    Answer,
    Check,
    CheckResult,
    Outcome,
    Verification,
    set_verification,
    validate,
    verification_of,
)
from tests.support.acme import Call, set_up_acme

GOOD = Verification(checks=(Check(name="health", path="/healthz"),), attempts=3, failure_limit=1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"checks": ()}, "checks"),
        ({"checks": (Check(name=" "),)}, "checks.0.name"),
        ({"checks": (Check(name="a"), Check(name="a"))}, "checks.1.name"),
        ({"checks": (Check(name="a", path="http://elsewhere/"),)}, "checks.0.path"),
        ({"checks": (Check(name="a", path="//elsewhere/x"),)}, "checks.0.path"),
        ({"checks": (Check(name="a", path="/a b"),)}, "checks.0.path"),
        ({"checks": (Check(name="a", method="DELETE"),)}, "checks.0.method"),
        ({"checks": (Check(name="a", body="x"),)}, "checks.0"),
        ({"checks": (Check(name="a", expect_status=99),)}, "checks.0.expectStatus"),
        ({"checks": (Check(name="a", json_field="status"),)}, "checks.0.jsonField"),
        ({"attempts": 0}, "attempts"),
        ({"attempts": 21}, "attempts"),
        ({"failure_limit": 3}, "failureLimit"),
        ({"interval_s": -1.0}, "interval"),
        ({"timeout_s": 0.0}, "timeout"),
    ],
)
def test_a_bad_field_is_refused_by_name(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate(dataclasses.replace(GOOD, **change))  # type: ignore[arg-type]
    assert refused.value.field == field


def test_a_good_verification_is_kept_and_read_back() -> None:
    stored = validate(GOOD)
    assert Verification.from_json(stored.to_json()) == GOOD


def test_the_summary_names_each_failing_check() -> None:
    outcome = Outcome(
        passed=False,
        checks=[
            CheckResult("health", True, [Answer(1, 200, True, "passed")]),
            CheckResult(
                "answers",
                False,
                [Answer(1, 500, False, "answered 500, expected 200"), Answer(2, None, False, "x")],
            ),
        ],
    )
    assert outcome.summary() == "verification failed: answers: 2 of 2 attempts failed (x)"


def setting(deployment_id: str, verification: Verification | None) -> Call[Deployment]:
    async def call(session: AsyncSession, actor: User) -> Deployment:
        return await set_verification(
            session, actor=actor, deployment_id=deployment_id, verification=verification
        )

    return call


async def test_developers_set_it_and_nothing_is_stored_when_refused(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    production = await acme.deployment("Production")
    await acme.refuses("viewer", setting(production.id, GOOD), Forbidden)
    await acme.refuses(
        "developer", setting(production.id, dataclasses.replace(GOOD, attempts=0)), InvalidInput
    )
    await acme.run("developer", setting(production.id, GOOD))
    assert verification_of(await acme.deployment("Production")) == GOOD
    await acme.run("developer", setting(production.id, None))
    assert verification_of(await acme.deployment("Production")) is None


async def test_in_a_protected_environment_only_an_admin_sets_it(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.protect("Production")
    production = await acme.deployment("Production")
    refused = await acme.refuses("developer", setting(production.id, GOOD), Forbidden)
    assert "only an ADMIN" in refused.message
    await acme.run("admin", setting(production.id, GOOD))
    # Nor may a developer remove what guards the reviewed changes.
    await acme.refuses("developer", setting(production.id, None), Forbidden)
    assert verification_of(await acme.deployment("Production")) == GOOD
    # Elsewhere, developers still set it.
    await acme.run("developer", setting((await acme.deployment("Staging")).id, GOOD))
