"""Twenty promotions of one deployment requested at once, served by two workers with four
consumers each: they run one at a time, none is lost, and the revisions are consecutive."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.processes import PromenadeProcess, instance_processes
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import greeting, new_greeter, revisions
from tests.support.installations import Cluster

RACERS = 20


@pytest.fixture(scope="module")
def two_workers(cluster: Cluster) -> Iterator[list[PromenadeProcess]]:
    workers = cluster.start_workers(["local", "local"], concurrency=4)
    yield workers
    cluster.stop_workers()


async def test_twenty_promotions_of_one_deployment_run_one_at_a_time(
    api: GraphQLClient, cluster: Cluster, two_workers: list[PromenadeProcess]
) -> None:
    greeter = await new_greeter(api, cluster.gateway_url)
    await greeter.deploy({"GREETING": "Hello from Development", "API_KEY": "dev-key"})

    requested = await asyncio.gather(
        *(
            greeter.promote(
                "Development", "Production", {"GREETING": f"racer {n}", "API_KEY": f"key-{n}"}
            )
            for n in range(RACERS)
        )
    )
    assert [p["__typename"] for p in requested] == ["Promotion"] * RACERS, requested
    greeting_of = {p["id"]: p["overrides"][0]["value"] for p in requested}
    assert len(greeting_of) == RACERS

    finished = await asyncio.gather(
        *(greeter.wait_promotion(p["id"], within=120) for p in requested)
    )
    assert [p["status"] for p in finished] == ["SUCCEEDED"] * RACERS, [
        (p["status"], p["error"]) for p in finished
    ]

    production = await greeter.wait_revision("Production", RACERS)
    history = revisions(production)
    assert production["history"]["totalCount"] == RACERS
    assert [r["revision"] for r in history] == list(range(1, RACERS + 1))
    assert [r["cause"] for r in history] == ["PROMOTION"] * RACERS
    # Each revision is a promotion of its own: none applied twice, none lost.
    assert sorted(r["promotion"]["id"] for r in history) == sorted(greeting_of)

    # One at a time: each promotion started applying after the one before it had succeeded.
    by_id = {p["id"]: p for p in finished}

    def at(promotion_id: str, status: str) -> datetime:
        (event,) = [e for e in by_id[promotion_id]["events"] if e["status"] == status]
        return datetime.fromisoformat(event["at"])

    for before, after in itertools.pairwise(history):
        assert at(before["promotion"]["id"], "SUCCEEDED") <= at(
            after["promotion"]["id"], "APPLYING_CONFIGURATION"
        ), (before["revision"], after["revision"])

    # What runs is what the promotion with the last revision asked for, on a single instance.
    last = greeting_of[history[-1]["promotion"]["id"]]
    assert {c["key"]: c["value"] for c in production["configuration"]}["GREETING"] == last
    live = await greeting(greeter.endpoint("prod"))
    assert live["greeting"] == last
    assert instance_processes(cluster.runtime_dir, production["id"]) == [live["pid"]]
