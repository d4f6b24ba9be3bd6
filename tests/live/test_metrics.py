"""``/metrics`` of a scaled installation, scraped over HTTP after a real promotion: two
``promenade api`` replicas (each counts its own requests, both report the database's gauges)
and a ``promenade worker`` on PROMENADE_WORKER_PORT (its steps, its queue, its instances), on
PostgreSQL and RabbitMQ."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.graphql.metrics import OPERATION_TYPES, OUTCOMES
from app.models import ChangeKind, ChangeStatus, PromotionStatus, RequestKind
from tests.processes import free_port
from tests.support.delayed_greeter import new_greeter
from tests.support.graphql_client import graphql_over_http
from tests.support.installations import Scaled, scaled_installation
from tests.support.metrics import Scrape, assert_bounded, scrape
from tests.support.postgres import new_database, postgres_server
from tests.support.rabbitmq import amqp_server_url, virtual_host
from tests.support.servers import Embedded
from tests.support.waiting import eventually

REQUESTS = "promenade_graphql_request_duration_seconds"
ALLOWED = {
    "operation_type": OPERATION_TYPES,
    "outcome": OUTCOMES,
    "status": {*PromotionStatus, *ChangeStatus},
    "kind": {*RequestKind, *ChangeKind},
    "step": {*ChangeStatus},
    "data_plane": {"local"},
    "organization": None,
    "project": None,
    "environment": None,
    "quantile": {"0.5", "0.9"},
}
API_FAMILIES = {
    REQUESTS: {"operation_type", "outcome", "le"},
    "promenade_websocket_connections": set(),
    "promenade_websocket_subscriptions": set(),
    "promenade_promotions": {"status", "kind"},
    "promenade_changes": {"status", "kind"},
    "promenade_approval_requests_pending": {"kind"},
    "promenade_outbox_backlog": set(),
    "promenade_outbox_oldest_age_seconds": set(),
}
WORKER_FAMILIES = {
    "promenade_step_duration_seconds": {"step", "le"},
    "promenade_changes_finished": {"kind", "status"},
    "promenade_instances": {"data_plane"},
    "promenade_queue_messages_ready": {"data_plane"},
    "promenade_queue_consumers": {"data_plane"},
}


@dataclass
class Installation:
    scaled: Scaled
    worker_url: str  # its /healthz, /readyz and /metrics


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    broker_url = amqp_server_url()
    data_dir: Path = tmp_path_factory.mktemp("metrics")
    worker_port = free_port()
    for server_url in postgres_server():
        with (
            new_database(server_url, migrated=False) as database_url,
            virtual_host(broker_url, "promenade-metrics") as amqp_url,
            scaled_installation(
                data_dir,
                database_url,
                amqp_url,
                replicas=2,
                worker_env={"PROMENADE_WORKER_PORT": str(worker_port)},
            ) as scaled,
        ):
            yield Installation(scaled, f"http://127.0.0.1:{worker_port}")


def mutations(scraped: Scrape) -> float:
    return scraped.value(f"{REQUESTS}_count", operation_type="mutation", outcome="ok")


async def test_a_promotion_shows_in_the_metrics_of_the_api_and_the_worker(
    installation: Installation,
) -> None:
    replica_a, replica_b = (api.url for api in installation.scaled.apis)
    before_a = await scrape(replica_a)
    before_b = await scrape(replica_b)
    async with graphql_over_http(replica_b, installation.scaled.token) as through_b:
        # A project, an integration, a build, a deploy to Development, then the promotion.
        greeter = await new_greeter(through_b, "replicas")
        promotion_id = await greeter.promote()
        await greeter.wait_promotion(promotion_id, "SUCCEEDED")

    # Each replica counts the requests it served.
    after_b = await scrape(replica_b)
    assert mutations(after_b) - mutations(before_b) == 5
    assert after_b.value(f"{REQUESTS}_count", operation_type="query", outcome="ok") > 0
    assert mutations(await scrape(replica_a)) == mutations(before_a)

    # Both read the same database: the same gauges (alerts aggregate them with max()).
    async def settled(url: str) -> Scrape | None:
        scraped = await scrape(url)
        succeeded = scraped.value("promenade_promotions", status="SUCCEEDED", kind="PROMOTION")
        backlog = scraped.value("promenade_outbox_backlog")
        return scraped if (succeeded, backlog) == (1, 0) else None

    for url in (replica_a, replica_b):
        scraped = await eventually(
            functools.partial(settled, url),
            what=f"{url}: 1 SUCCEEDED, no backlog",
        )
        assert scraped.value("promenade_outbox_oldest_age_seconds") == 0
        assert scraped.value("promenade_changes", status="SUCCEEDED", kind="DEPLOY") == 1
        assert scraped.value("promenade_changes", status="SUCCEEDED", kind="PROMOTION") == 1
        assert scraped.value("promenade_approval_requests_pending", kind="PROMOTION") == 0
        for family, labels in API_FAMILIES.items():
            assert scraped.label_names(family) == labels, family
        assert_bounded(scraped.promenade(), ALLOWED)

    # The worker: each step of both changes (the deploy and the promotion), their ends, its
    # queue as RabbitMQ counts it, and its two instances (Development and Production).
    worker = await scrape(installation.worker_url)
    for step in ("QUEUED", "APPLYING_CONFIGURATION", "RESTARTING"):
        assert worker.value("promenade_step_duration_seconds_count", step=step) == 2, step
    for kind in ("DEPLOY", "PROMOTION"):
        finished = worker.value("promenade_changes_finished_total", kind=kind, status="SUCCEEDED")
        assert finished == 1, kind
    assert worker.value("promenade_queue_consumers", data_plane="local") == 1
    assert worker.value("promenade_queue_messages_ready", data_plane="local") == 0
    assert worker.value("promenade_instances", data_plane="local") == 2
    for family, labels in WORKER_FAMILIES.items():
        assert worker.label_names(family) == labels, family
    assert REQUESTS not in worker.families  # the API's own
    assert "promenade_promotions" not in worker.families
    assert_bounded(worker.promenade(), ALLOWED)


async def test_embedded_mode_reports_the_api_and_its_worker_in_one_scrape(
    embedded: Embedded,
) -> None:
    # One process, one registry: the API's metrics and its worker's, each defined once.
    scraped = await scrape(embedded.url)
    for family, labels in {**API_FAMILIES, **WORKER_FAMILIES}.items():
        if family in ("promenade_step_duration_seconds", "promenade_changes_finished"):
            assert family in scraped.families, family  # observed once a change runs
            continue
        assert scraped.label_names(family) == labels, family
    # The in-process bus counts its consumers as RabbitMQ does: the worker's, of the queue.
    assert scraped.value("promenade_queue_consumers", data_plane="local") == 1
    # Other tests' CONTAINER data planes are served too, each by its label.
    assert_bounded(scraped.promenade(), {**ALLOWED, "data_plane": None})
