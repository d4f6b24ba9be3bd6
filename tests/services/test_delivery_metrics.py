"""Delivery metrics (app/services/delivery_metrics.py) over a history written with explicit
times, whose answers are computed by hand below, on SQLite and PostgreSQL.

The window is ten days, [T0, T0 + 240 h). Times are in hours after T0 (``at(h)``).

Builds of Greeter: m1 made at -2 h, m2 at 10 h, m3 at 50 h, m4 at 100 h.

Production (revision numbers in brackets):
  -1 h    DEPLOY m1 SUCCEEDED [1]                 before the window: not counted
  12 h    PROMOTION m2 SUCCEEDED [2]              first run of m2: lead 12 - 10 = 2 h
  20 h    CONFIG_CHANGE m2 SUCCEEDED [3]          m2 ran here before: no lead time
  54 h    PROMOTION m3 FAILED (restarting)        a failure
  56 h    RESTART m2 SUCCEEDED [4]                restores the 54 h failure: 2 h
  60 h    PROMOTION m3 SUCCEEDED [5]              first success of m3: lead 60 - 50 = 10 h
  63 h    ROLLBACK to [4] SUCCEEDED [6]           undoes [5]: the 60 h change failed, restored
                                                  in 63 - 60 = 3 h; a rollback is no deployment
  104 h   PROMOTION m4 FAILED verification [7]    a failure
  104.5 h ROLLBACK to [6] SUCCEEDED [8]           automatic: restores the 104 h one in 0.5 h
  112 h   DEPLOY m4 SUCCEEDED [9]                 first success of m4: lead 112 - 100 = 12 h
  150 h   RESTART CANCELLED                       never ran: not counted
  200 h   CONFIG_CHANGE m4 FAILED                 a failure, never restored:
  201 h   SUSPEND SUCCEEDED                       a suspend restores nothing

  counted changes: 12, 20, 54, 56, 60, 104, 112, 200 h = 8
  deployments (SUCCEEDED among them): 12, 20, 56, 60, 112 h = 5; per day 5 / 10 = 0.5
  failed: 54 h, 60 h (rolled back), 104 h, 200 h = 4; rate 4 / 8 = 0.5
  lead times: 2 h, 10 h, 12 h = 7200, 36000, 43200 s
    median: 36000; p90: rank 0.9 * (3 - 1) = 1.8, 36000 + 0.8 * (43200 - 36000) = 41760
  times to restore: 2 h, 3 h, 0.5 h = 1800, 7200, 10800 s (sorted); one unrestored
    median: 7200; p90: rank 1.8, 7200 + 0.8 * (10800 - 7200) = 10080

Staging:
  -5 h    DEPLOY m2 SUCCEEDED [1]                 before the window
  0 h     RESTART m2 SUCCEEDED [2]                at since: counted; m2 ran before: no lead
  230 h   DEPLOY m3 SUCCEEDED [3]                 first run of m3 here: lead 230 - 50 = 180 h
  240 h   DEPLOY m4 SUCCEEDED [4]                 at until: outside the window
  245 h   ROLLBACK to [2] SUCCEEDED [5]           undoes [3] (and [4]): the 230 h change
                                                  failed, restored 245 - 230 = 15 h later
  counted: 0 h, 230 h = 2; deployments 2, per day 0.2; failed 1, rate 0.5
  lead: 180 h = 648000 s (median = p90); restore: 15 h = 54000 s (median = p90)

Development: nothing. Payroll, another project of the organization, one DEPLOY in Production
at 5 h of its build made at 4 h: 1 deployment, lead 3600 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import ChangeKind, ChangeStatus, User
from app.services.delivery_metrics import (
    DeliveryMetrics,
    Percentiles,
    Window,
    delivery_metrics,
    window_of,
)
from app.services.errors import InvalidInput
from app.services.projects import create_integration, create_project
from tests.support.acme import Acme, set_up_acme
from tests.support.delivery_history import add_build, add_change, deployment_of

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WINDOW = Window(since=T0, until=T0 + timedelta(hours=240))

K = ChangeKind
S = ChangeStatus


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


async def write_history(acme: Acme) -> str:
    """The history of the docstring; the Payroll project's id."""
    async with acme.session() as session:
        greeter = acme.integration_id
        m1, m2, m3, m4 = (
            add_build(session, integration_id=greeter, version=f"m{n}", created_at=at(hours))
            for n, hours in ((1, -2), (2, 10), (3, 50), (4, 100))
        )
        await session.flush()
        prod = await deployment_of(
            session, integration_id=greeter, environment_id=acme.environments["Production"]
        )
        for kind, status, build, hours, revision, to in (
            (K.DEPLOY, S.SUCCEEDED, m1, -1, 1, None),
            (K.PROMOTION, S.SUCCEEDED, m2, 12, 2, None),
            (K.CONFIG_CHANGE, S.SUCCEEDED, m2, 20, 3, None),
            (K.PROMOTION, S.FAILED, m3, 54, None, None),
            (K.RESTART, S.SUCCEEDED, m2, 56, 4, None),
            (K.PROMOTION, S.SUCCEEDED, m3, 60, 5, None),
            (K.ROLLBACK, S.SUCCEEDED, m2, 63, 6, 4),
            (K.PROMOTION, S.FAILED, m4, 104, 7, None),
            (K.ROLLBACK, S.SUCCEEDED, m2, 104.5, 8, 6),
            (K.DEPLOY, S.SUCCEEDED, m4, 112, 9, None),
            (K.RESTART, S.CANCELLED, m4, 150, None, None),
            (K.CONFIG_CHANGE, S.FAILED, m4, 200, None, None),
            (K.SUSPEND, S.SUCCEEDED, m4, 201, None, None),
        ):
            await add_change(
                session,
                prod,
                kind,
                status,
                build=build,
                finished_at=at(hours),
                revision=revision,
                rollback_to=to,
            )
        staging = await deployment_of(
            session, integration_id=greeter, environment_id=acme.environments["Staging"]
        )
        for kind, status, build, hours, revision, to in (
            (K.DEPLOY, S.SUCCEEDED, m2, -5, 1, None),
            (K.RESTART, S.SUCCEEDED, m2, 0, 2, None),
            (K.DEPLOY, S.SUCCEEDED, m3, 230, 3, None),
            (K.DEPLOY, S.SUCCEEDED, m4, 240, 4, None),
            (K.ROLLBACK, S.SUCCEEDED, m2, 245, 5, 2),
        ):
            await add_change(
                session,
                staging,
                kind,
                status,
                build=build,
                finished_at=at(hours),
                revision=revision,
                rollback_to=to,
            )
        await session.commit()

    async with acme.session() as session:
        admin = await session.get(User, acme.users["admin"])
        assert admin is not None
        project = await create_project(
            session,
            actor=admin,
            organization_id=acme.id,
            name="Payroll",
            pipeline_id=acme.pipeline_id,
        )
        integration = await create_integration(
            session, actor=admin, project_id=project.id, name="Payslips", config_schema=()
        )
        await session.flush()
        build = add_build(session, integration_id=integration.id, version="p1", created_at=at(4))
        await session.flush()
        deployment = await deployment_of(
            session, integration_id=integration.id, environment_id=acme.environments["Production"]
        )
        await add_change(
            session, deployment, K.DEPLOY, S.SUCCEEDED, build=build, finished_at=at(5), revision=1
        )
        await session.commit()
        return project.id


@pytest.fixture
async def acme(engine: AsyncEngine) -> Acme:
    return await set_up_acme(engine)


def approx(metrics: DeliveryMetrics) -> dict[str, object]:
    """The figures, times to the millisecond (SQLite computes them from Julian days)."""

    def rounded(percentiles: Percentiles) -> tuple[float | None, float | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 3)

        return ms(percentiles.median), ms(percentiles.p90)

    return {
        "changes": metrics.changes,
        "deployments": metrics.deployments,
        "per_day": round(metrics.deployments_per_day, 9),
        "failed": metrics.failed_changes,
        "rate": metrics.change_failure_rate,
        "unrestored": metrics.unrestored_failures,
        "lead": rounded(metrics.lead_time),
        "restore": rounded(metrics.time_to_restore),
    }


async def test_the_four_keys_of_a_history_computed_by_hand(acme: Acme) -> None:
    payroll = await write_history(acme)
    async with acme.engine.connect() as connection:
        found = await delivery_metrics(connection, window=WINDOW, project_ids=[acme.project_id])
        everything = await delivery_metrics(connection, window=WINDOW)
    production = (acme.project_id, acme.environments["Production"])
    staging = (acme.project_id, acme.environments["Staging"])
    # Development had no change: absent.
    assert set(found) == {production, staging}
    assert approx(found[production]) == {
        "changes": 8,
        "deployments": 5,
        "per_day": 0.5,
        "failed": 4,
        "rate": 0.5,
        "unrestored": 1,
        "lead": (36000.0, 41760.0),
        "restore": (7200.0, 10080.0),
    }
    assert approx(found[staging]) == {
        "changes": 2,
        "deployments": 2,
        "per_day": 0.2,
        "failed": 1,
        "rate": 0.5,
        "unrestored": 0,
        "lead": (648000.0, 648000.0),
        "restore": (54000.0, 54000.0),
    }
    # Without a project: every project's pairs, Payroll's too.
    payroll_production = (payroll, acme.environments["Production"])
    assert set(everything) == {production, staging, payroll_production}
    assert approx(everything[production]) == approx(found[production])
    assert approx(everything[payroll_production]) == {
        "changes": 1,
        "deployments": 1,
        "per_day": 0.1,
        "failed": 0,
        "rate": 0.0,
        "unrestored": 0,
        "lead": (3600.0, 3600.0),
        "restore": (None, None),
    }


async def test_one_environment_and_a_shorter_window(acme: Acme) -> None:
    await write_history(acme)
    # [50 h, 110 h) of Production: 54 F, 56 S, 60 S (rolled back at 63), 104 F: 4 changes,
    # 2 deployments over 2.5 days = 0.8 a day, 3 failed (rate 0.75), all restored: 7200,
    # 10800, 1800 s; lead: only m3 first ran in it (60 h): 36000 s.
    window = Window(since=at(50), until=at(110))
    async with acme.engine.connect() as connection:
        found = await delivery_metrics(
            connection,
            window=window,
            project_ids=[acme.project_id],
            environment_id=acme.environments["Production"],
        )
    assert list(found) == [(acme.project_id, acme.environments["Production"])]
    assert approx(next(iter(found.values()))) == {
        "changes": 4,
        "deployments": 2,
        "per_day": 0.8,
        "failed": 3,
        "rate": 0.75,
        "unrestored": 0,
        "lead": (36000.0, 36000.0),
        "restore": (7200.0, 10080.0),
    }


async def test_an_empty_window_has_no_figures(acme: Acme) -> None:
    await write_history(acme)
    async with acme.engine.connect() as connection:
        found = await delivery_metrics(
            connection, window=Window(since=at(300), until=at(400)), project_ids=[acme.project_id]
        )
    assert found == {}


def test_the_window_defaults_to_thirty_days_and_is_bounded() -> None:
    now = datetime(2026, 12, 4, 12, tzinfo=UTC)
    assert window_of(since=None, until=None, now=now) == Window(
        since=now - timedelta(days=30), until=now
    )
    naive = datetime(2026, 12, 1)
    assert window_of(since=naive, until=None, now=now).since == naive.replace(tzinfo=UTC)
    with pytest.raises(InvalidInput) as refused:
        window_of(since=now, until=now, now=now)
    assert refused.value.field == "until"
    with pytest.raises(InvalidInput) as refused:
        window_of(since=now - timedelta(days=367), until=None, now=now)
    assert refused.value.field == "since"
    # 366 days exactly is allowed.
    assert window_of(since=now - timedelta(days=366), until=now).days == 366
