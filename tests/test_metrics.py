"""``/metrics`` of the API (app/metrics.py, app/graphql/metrics.py), scraped over HTTP from the
app served by uvicorn: requests by operation type and outcome, websockets and subscriptions,
what the database says, and label values that stay a bounded set however many ids requests
carry. The registry is the process's: the tests compare scrapes before and after."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_session_factory, session_scope
from app.delivery_gauges import delivery_refresher
from app.graphql.metrics import OPERATION_TYPES, OUTCOMES
from app.models import ChangeKind, ChangeStatus, OutboxMessage, PromotionStatus, RequestKind
from app.models.base import utcnow
from tests.support.acme import set_up_acme
from tests.support.delivery_history import add_build, add_change, deployment_of
from tests.support.graphql_client import graphql_over_http
from tests.support.graphql_ws import WsClient
from tests.support.metrics import Scrape, assert_bounded, scrape
from tests.support.servers import LiveApp, live_app_on
from tests.support.statements import statements
from tests.support.waiting import eventually

REQUESTS = "promenade_graphql_request_duration_seconds"
# With what workers measure: tests run them in this process too (one registry).
ALLOWED: dict[str, Iterable[str] | None] = {
    "operation_type": OPERATION_TYPES,
    "outcome": OUTCOMES,
    "status": {*PromotionStatus, *ChangeStatus},
    "kind": {*RequestKind, *ChangeKind},
    "step": {*ChangeStatus},
    "data_plane": None,
    # The delivery gauges' (app/delivery_gauges.py): slugs and names, never ids.
    "organization": None,
    "project": None,
    "environment": None,
    "quantile": {"0.5", "0.9"},
}

CREATE_ENVIRONMENT = """mutation($input: CreateEnvironmentInput!) {
  createEnvironment(input: $input) { __typename ... on Error { message } } }"""


@pytest.fixture
async def live(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[LiveApp]:
    async with live_app_on(engine, tmp_path) as app:
        yield app


def requests(scraped: Scrape, operation_type: str, outcome: str) -> float:
    return scraped.value(f"{REQUESTS}_count", operation_type=operation_type, outcome=outcome)


async def test_requests_are_counted_by_operation_type_and_outcome(live: LiveApp) -> None:
    before = await scrape(live.url)
    async with graphql_over_http(live.url, live.token) as api:
        await api.raw("{ __typename }")
        await api.raw("query($id: ID!) { node(id: $id) { id } }", {"id": "env_" + "0" * 26})
        await api.raw("{ noSuchField }")  # does not validate: an error
        await api.raw("{")  # does not parse: of no known type
        for name in ("Staging", ""):  # created; refused with a ValidationError (data)
            body = await api.raw(
                CREATE_ENVIRONMENT,
                {
                    "input": {
                        "organizationId": live.organization_id,
                        "name": name,
                        "dnsPrefix": f"p{secrets.token_hex(2)}",
                    }
                },
            )
            assert "errors" not in body, body
    after = await scrape(live.url)

    assert requests(after, "query", "ok") - requests(before, "query", "ok") == 2
    assert requests(after, "query", "error") - requests(before, "query", "error") == 1
    assert requests(after, "unknown", "error") - requests(before, "unknown", "error") == 1
    # A result union's error type is an answer, not an error.
    assert requests(after, "mutation", "ok") - requests(before, "mutation", "ok") == 2
    assert after.label_names(REQUESTS) == {"operation_type", "outcome", "le"}
    assert_bounded(after.promenade(), ALLOWED)


async def test_websockets_and_their_subscriptions_are_gauges(live: LiveApp) -> None:
    async def gauges() -> tuple[float, float]:
        scraped = await scrape(live.url)
        return (
            scraped.value("promenade_websocket_connections"),
            scraped.value("promenade_websocket_subscriptions"),
        )

    async def reach(expected: tuple[float, float]) -> None:
        async def reached() -> bool:
            return await gauges() == expected

        await eventually(reached, what=f"websockets and subscriptions at {expected}")

    sockets, subscriptions = await gauges()
    started = requests(await scrape(live.url), "subscription", "ok")
    async with (
        WsClient.connect(live.url, live.token) as first,
        WsClient.connect(live.url, live.token) as second,
    ):
        await first.subscribe("subscription { deploymentEvents { status } }")
        await second.subscribe("subscription { deploymentEvents { status } }")  # shared
        query = await second.subscribe(
            "subscription($o: ID!) { approvalRequests(organizationId: $o) { id } }",
            {"o": live.organization_id},
        )
        await reach((sockets + 2, subscriptions + 3))
        await second.complete(query)
        await reach((sockets + 2, subscriptions + 2))
    await reach((sockets, subscriptions))

    # Subscriptions are requests too, counted here as they ended without a result: two, as
    # the sockets that asked the same deploymentEvents question shared one execution.
    async def counted() -> bool:
        return requests(await scrape(live.url), "subscription", "ok") - started == 2

    await eventually(counted, what="two subscription requests")


async def test_the_database_gauges_are_read_at_each_scrape(live: LiveApp) -> None:
    sessions = create_session_factory(live.engine)
    async with session_scope(sessions) as session:
        session.add(
            OutboxMessage(
                exchange="event",
                routing_key="metrics.test",
                body={},
                created_at=utcnow() - timedelta(hours=1),
            )
        )
        session.add(OutboxMessage(exchange="event", routing_key="metrics.test", body={}))
    scraped = await scrape(live.url)
    # No relay runs without a bus: both rows wait, the oldest an hour.
    assert scraped.value("promenade_outbox_backlog") >= 2
    assert scraped.value("promenade_outbox_oldest_age_seconds") >= 3600
    # Every status and kind is reported, zero when no row has it.
    promotions = scraped.values("promenade_promotions")
    assert len(promotions) == len(PromotionStatus) * len(RequestKind)
    assert len(scraped.values("promenade_changes")) == len(ChangeStatus) * len(ChangeKind)
    assert len(scraped.values("promenade_approval_requests_pending")) == len(RequestKind)
    assert scraped.label_names("promenade_promotions") == {"status", "kind"}
    assert_bounded(scraped.promenade(), ALLOWED)


async def test_with_a_metrics_token_a_scrape_must_send_it(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    async with (
        live_app_on(engine, tmp_path, settings={"metrics_token": "scrape-me"}) as app,
        httpx.AsyncClient(trust_env=False, timeout=10) as http,
    ):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": app.token}):
            refused = await http.get(f"{app.url}/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "promenade_" not in refused.text
        allowed = await http.get(
            f"{app.url}/metrics", headers={"Authorization": "Bearer scrape-me"}
        )
        assert allowed.status_code == 200
        assert "promenade_outbox_backlog" in allowed.text


async def test_scrapes_at_once_share_one_reading_of_the_database(live: LiveApp) -> None:
    with statements(live.engine) as sent:
        await asyncio.gather(*(scrape(live.url) for _ in range(10)))
    reads = [s for s in sent if "outbox" in s.lower()]
    # Ten scrapes in flight together: far fewer than ten readings (each reads the outbox once).
    assert 1 <= len(reads) < 10, len(reads)


async def test_the_delivery_metrics_of_the_last_30_days_are_gauges(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """acme's Greeter in Production: a deploy 40 days ago (outside the window), a build made
    2 days and 1 hour ago and deployed 2 days ago (lead 3600 s), a promotion FAILED a day ago
    and a restart 30 minutes later (restored in 1800 s): 3 changes, 2 deployments, 1 failed."""
    acme = await set_up_acme(engine)
    now = utcnow()
    async with acme.session() as session:
        old = add_build(
            session,
            integration_id=acme.integration_id,
            version="m0",
            created_at=now - timedelta(days=41),
        )
        new = add_build(
            session,
            integration_id=acme.integration_id,
            version="m1",
            created_at=now - timedelta(days=2, hours=1),
        )
        await session.flush()
        production = await deployment_of(
            session,
            integration_id=acme.integration_id,
            environment_id=acme.environments["Production"],
        )
        for kind, status, build, ago, revision in (
            (ChangeKind.DEPLOY, ChangeStatus.SUCCEEDED, old, timedelta(days=40), 1),
            (ChangeKind.DEPLOY, ChangeStatus.SUCCEEDED, new, timedelta(days=2), 2),
            (ChangeKind.PROMOTION, ChangeStatus.FAILED, new, timedelta(days=1), None),
            (ChangeKind.RESTART, ChangeStatus.SUCCEEDED, new, timedelta(hours=23, minutes=30), 3),
        ):
            await add_change(
                session,
                production,
                kind,
                status,
                build=build,
                finished_at=now - ago,
                revision=revision,
            )
        await session.commit()
    async with live_app_on(engine, tmp_path) as live:
        scraped = await scrape(live.url)
    labels = {"organization": "acme", "project": "billing", "environment": "Production"}
    assert scraped.value("promenade_delivery_deployments", **labels) == 2
    assert scraped.value("promenade_delivery_changes", **labels) == 3
    assert scraped.value("promenade_delivery_failed_changes", **labels) == 1
    assert scraped.value("promenade_delivery_change_failure_rate", **labels) == pytest.approx(1 / 3)
    for quantile in ("0.5", "0.9"):
        lead = scraped.value("promenade_delivery_lead_time_seconds", **labels, quantile=quantile)
        assert lead == pytest.approx(3600, abs=0.01)
        restore = scraped.value(
            "promenade_delivery_time_to_restore_seconds", **labels, quantile=quantile
        )
        assert restore == pytest.approx(1800, abs=0.01)
    # Only pairs with changes: Staging and Development had none.
    reported = scraped.values("promenade_delivery_deployments")
    assert not [
        key
        for key in reported
        if ("organization", "acme") in key and ("environment", "Staging") in key
    ]
    assert scraped.value("promenade_delivery_pairs_dropped") == 0
    assert_bounded(scraped.promenade(), ALLOWED)


async def test_the_delivery_gauges_are_read_at_most_once_a_minute(engine: AsyncEngine) -> None:
    refresh = delivery_refresher(engine)
    with statements(engine) as sent:
        for _ in range(3):
            await refresh()
    assert len([s for s in sent if "ranked_lead" in s]) == 1
