"""Environment drift: per integration of a project, the build each of two environments runs
and how each key's effective value differs; secrets are compared by presence only, and never
opened."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import DeploymentStatus, Environment, Integration, User
from app.services.configuration import ConfigKey
from app.services.drift import Comparison, DriftKind, compare_environments
from app.services.errors import InvalidInput, NotFound
from app.services.projects import create_integration
from tests.support.acme import COMPLETE, Acme, record_run, set_up_acme


def compare(acme: Acme, a: str = "Development", b: str = "Production", **ids: str) -> Any:
    async def call(session: AsyncSession, actor: User) -> Comparison:
        return await compare_environments(
            session,
            actor=actor,
            project_id=ids.get("project", acme.project_id),
            environment_a_id=ids.get("a", acme.environments.get(a, a)),
            environment_b_id=ids.get("b", acme.environments.get(b, b)),
        )

    return call


async def comparison(acme: Acme, a: str = "Development", b: str = "Production") -> Comparison:
    result: Comparison = await acme.run("viewer", compare(acme, a, b))
    return result


def keys(result: Comparison, index: int = 0) -> dict[str, tuple[DriftKind, str | None, str | None]]:
    """key -> (kind, valueA, valueB) of the index-th integration."""
    return {c.key: (c.kind, c.value_a, c.value_b) for c in result.integrations[index].configuration}


def answer(result: Comparison) -> list[Any]:
    """Everything a comparison says, as plain values."""
    return [
        (
            d.integration.id,
            d.status_a,
            d.status_b,
            d.build_a.id if d.build_a else None,
            d.build_b.id if d.build_b else None,
            d.same_build,
            d.differs,
            d.configuration,
        )
        for d in result.integrations
    ]


async def test_nothing_deployed_anywhere_differs_in_nothing_but_shows_the_defaults(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    result = await comparison(acme)
    [drift] = result.integrations
    assert drift.integration.id == acme.integration_id
    assert (drift.status_a, drift.status_b) == (DeploymentStatus.NOT_DEPLOYED,) * 2
    assert (drift.build_a, drift.build_b) == (None, None)
    assert drift.same_build and not drift.differs
    # REPEAT has a default: both run with it.
    assert keys(result) == {"REPEAT": (DriftKind.SAME, "1", "1")}
    assert result.drifted_integrations == 0
    assert (result.environment_a.name, result.environment_b.name) == ("Development", "Production")


async def test_builds_that_differ_and_builds_that_are_the_same(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "2.0", values=COMPLETE)
    await record_run(acme, "Staging", "2.0", values=COMPLETE)
    await record_run(acme, "Production", "1.0", values=COMPLETE)

    [drift] = (await comparison(acme)).integrations
    assert drift.build_a is not None and drift.build_a.version == "2.0"
    assert drift.build_b is not None and drift.build_b.version == "1.0"
    assert (drift.status_a, drift.status_b) == (DeploymentStatus.ACTIVE,) * 2
    assert not drift.same_build and drift.differs

    [same] = (await comparison(acme, "Development", "Staging")).integrations
    assert same.build_a is not None and same.build_a.version == "2.0"
    assert same.same_build and not same.differs


async def test_a_deployed_environment_against_one_not_deployed(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values=COMPLETE)
    result = await comparison(acme)
    [drift] = result.integrations
    assert (drift.status_a, drift.status_b) == (
        DeploymentStatus.ACTIVE,
        DeploymentStatus.NOT_DEPLOYED,
    )
    assert drift.build_a is not None and drift.build_b is None
    assert not drift.same_build and drift.differs
    assert keys(result) == {
        "GREETING": (DriftKind.ONLY_IN_A, "hello", None),
        "API_KEY": (DriftKind.ONLY_IN_A, None, None),
        "REPEAT": (DriftKind.SAME, "1", "1"),
    }
    assert result.drifted_integrations == 1


async def test_values_same_different_on_one_side_and_over_defaults(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0")
    await record_run(acme, "Production", "1.0")
    await acme.configure("Development", {"GREETING": "hello", "REPEAT": "3", "COLOR": "red"})
    await acme.configure("Production", {"GREETING": "hello"})

    result = await comparison(acme)
    # Schema order; REPEAT's own value in A against its default in B.
    assert list(keys(result)) == ["GREETING", "REPEAT", "COLOR"]
    assert keys(result) == {
        "GREETING": (DriftKind.SAME, "hello", "hello"),
        "REPEAT": (DriftKind.DIFFERENT, "3", "1"),
        "COLOR": (DriftKind.ONLY_IN_A, "red", None),
    }
    [drift] = result.integrations
    assert drift.same_build and drift.differs

    # The same key given the default's value explicitly runs the same.
    await acme.configure("Development", {"REPEAT": "1", "COLOR": None})
    await acme.configure("Production", {"GREETING": "bonjour"})
    assert keys(await comparison(acme)) == {
        "GREETING": (DriftKind.DIFFERENT, "hello", "bonjour"),
        "REPEAT": (DriftKind.SAME, "1", "1"),
    }
    # B against A: the sides swap.
    await acme.configure("Production", {"COLOR": "blue"})
    assert keys(await comparison(acme, "Production", "Development"))["COLOR"] == (
        DriftKind.ONLY_IN_A,
        "blue",
        None,
    )


@pytest.mark.parametrize("production_secret", ["guess", "s3cret"])
async def test_a_secret_set_in_both_is_not_compared_whether_equal_or_not(
    engine: AsyncEngine, production_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values={"GREETING": "hi", "API_KEY": "guess"})
    await record_run(
        acme, "Production", "1.0", values={"GREETING": "hi", "API_KEY": production_secret}
    )

    def never(self: SecretBox, token: str) -> str:
        raise AssertionError("the comparison opened a secret")

    monkeypatch.setattr(SecretBox, "open", never)
    result = await comparison(acme)
    [api_key] = [c for c in result.integrations[0].configuration if c.key == "API_KEY"]
    assert api_key.secret
    assert (api_key.kind, api_key.value_a, api_key.value_b) == (
        DriftKind.SECRET_NOT_COMPARED,
        None,
        None,
    )
    # Not compared is not drift: the same build, the same values otherwise.
    assert not result.integrations[0].differs
    assert "guess" not in repr(answer(result)) and "s3cret" not in repr(answer(result))


async def test_the_answer_is_the_same_whether_the_secrets_are_equal_or_not(
    engine: AsyncEngine,
) -> None:
    acme = await set_up_acme(engine)
    await record_run(acme, "Development", "1.0", values={"GREETING": "hi", "API_KEY": "guess"})
    await record_run(acme, "Production", "1.0", values={"GREETING": "hi", "API_KEY": "s3cret"})
    unequal = answer(await comparison(acme))
    # The developer's guess is right.
    await acme.configure("Development", {"API_KEY": "s3cret"})
    assert answer(await comparison(acme)) == unequal


async def test_a_secret_on_one_side_only_differs_by_presence(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    await acme.configure("Production", {"API_KEY": "s3cret"})
    result = await comparison(acme)
    assert keys(result)["API_KEY"] == (DriftKind.ONLY_IN_B, None, None)
    assert result.integrations[0].configuration[0].secret
    assert result.integrations[0].differs


async def test_a_stored_secret_stays_unopened_when_its_key_is_no_longer_secret(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored row says secret (its value is ciphertext): compared by presence, not shown."""
    acme = await set_up_acme(engine)
    await acme.configure("Development", {"API_KEY": "guess"})
    await acme.configure("Production", {"API_KEY": "s3cret"})
    async with acme.session() as session:
        integration = await session.get(Integration, acme.integration_id)
        assert integration is not None
        integration.config_schema = [
            {**entry, "secret": False} for entry in integration.config_schema
        ]
        session.add(integration)
        await session.commit()
    monkeypatch.setattr(SecretBox, "open", lambda self, token: pytest.fail("opened"))
    assert keys(await comparison(acme))["API_KEY"] == (DriftKind.SECRET_NOT_COMPARED, None, None)


async def test_every_integration_of_the_project_in_name_order(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    archiver = await acme.run(
        "admin",
        lambda session, admin: create_integration(
            session,
            actor=admin,
            project_id=acme.project_id,
            name="Archiver",
            config_schema=[ConfigKey("BUCKET")],
        ),
    )
    await acme.configure("Development", {"GREETING": "hello"})
    result = await comparison(acme)
    assert [d.integration.name for d in result.integrations] == ["Archiver", "Greeter"]
    assert result.integrations[0].integration.id == archiver.id
    assert keys(result, 0) == {}
    assert not result.integrations[0].differs and result.integrations[1].differs
    assert result.drifted_integrations == 1


async def test_any_member_may_compare_and_nobody_else(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    for member in ("admin", "developer", "approver", "viewer"):
        assert len((await acme.run(member, compare(acme))).integrations) == 1
    await acme.refuses("outsider", compare(acme), NotFound)


async def test_another_organizations_environment_is_not_found(engine: AsyncEngine) -> None:
    acme = await set_up_acme(engine)
    async with acme.session() as session:
        foreign = (
            await session.exec(select(Environment).where(Environment.organization_id != acme.id))
        ).first()
    assert foreign is not None
    for ids in ({"a": foreign.id}, {"b": foreign.id}, {"a": "env_nope"}):
        error = await acme.refuses("admin", compare(acme, **ids), NotFound)
        assert error.id == next(iter(ids.values()))
    # Not found comes first, even where the other environment is outside the pipeline.
    await acme.refuses("admin", compare(acme, "Sandbox", b=foreign.id), NotFound)


@pytest.mark.parametrize(
    ("a", "b", "field"),
    [("Sandbox", "Production", "environmentA"), ("Development", "Sandbox", "environmentB")],
)
async def test_an_environment_outside_the_pipeline_is_refused_naming_it(
    engine: AsyncEngine, a: str, b: str, field: str
) -> None:
    acme = await set_up_acme(engine)
    error = await acme.refuses("viewer", compare(acme, a, b), InvalidInput)
    assert error.field == field
    assert "Sandbox is not in the pipeline" in error.message


async def test_configuration_groups_count_under_the_deployments_own_values(
    engine: AsyncEngine,
) -> None:
    from app.models import GroupLinkMode
    from app.services.configuration_groups import GroupKey
    from tests.services.test_configuration_groups import creating, linking, setting

    acme = await set_up_acme(engine)
    shared = await acme.run(
        "admin",
        creating(
            acme,
            name="shared",
            keys=[GroupKey("REPEAT"), GroupKey("DB_URL"), GroupKey("TOKEN", secret=True)],
        ),
    )
    files = await acme.run(
        "admin", creating(acme, name="files", keys=[GroupKey("A"), GroupKey("S", secret=True)])
    )
    await acme.run("admin", linking(shared.id, acme.integration_id))
    await acme.run("admin", linking(files.id, acme.integration_id, GroupLinkMode.FILE))
    for environment, url in (("Development", "pg://dev"), ("Production", "pg://prod")):
        await acme.run(
            "admin",
            setting(acme, shared.id, environment, {"REPEAT": "2", "DB_URL": url, "TOKEN": url}),
        )
        await acme.run("admin", setting(acme, files.id, environment, {"A": "1", "S": url}))
    await acme.configure("Production", {"REPEAT": "5"})  # its own value wins over the group's
    found = keys(await comparison(acme))
    assert found["REPEAT"] == (DriftKind.DIFFERENT, "2", "5")
    assert found["DB_URL"] == (DriftKind.DIFFERENT, "pg://dev", "pg://prod")
    # Secrets, a group's file holding one among them, are not compared and never shown.
    assert found["TOKEN"] == (DriftKind.SECRET_NOT_COMPARED, None, None)
    assert found["groups/files.toml"] == (DriftKind.SECRET_NOT_COMPARED, None, None)
