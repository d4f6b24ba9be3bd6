"""What a worker measures: how long each step of a change takes, the changes it finished, the
restarts of instances that died, and, read at each scrape (``Worker.report_metrics``), its data
planes' command queues and instances.

A data plane is labelled by its label (``local``, or ``<organization slug>/<name>``), the name
its operator gives ``--data-plane``: one value per data plane the worker serves, readable on a
dashboard, never its id (ids are opaque, and an organization's would name it twice over).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from app.messaging.bus import Bus
from app.models import ChangeStatus, DeploymentChange
from app.services.dataplanes import ServedDataPlane
from workers.runtimes.base import Runtime

STEP_SECONDS = Histogram(
    "promenade_step_duration_seconds",
    "How long a step of a change took on this worker: QUEUED (taking it), "
    "APPLYING_CONFIGURATION (the target's values and the frozen snapshot), RESTARTING (the new "
    "instance started, healthy, routed, the old one retired).",
    ["step"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
CHANGES_FINISHED = Counter(
    "promenade_changes_finished",
    "Changes this worker ended, by kind and final status (counted once committed).",
    ["kind", "status"],
)
INSTANCE_RESTARTS = Counter(
    "promenade_instance_restarts",
    "Instances the supervisor found ended and started again, by data plane.",
    ["data_plane"],
)
INSTANCES = Gauge(
    "promenade_instances",
    "Deployments that have instances (running, or not removed yet) on the data plane's "
    "runtime, as this worker's runtime sees them.",
    ["data_plane"],
)
QUEUE_READY = Gauge(
    "promenade_queue_messages_ready",
    "Commands waiting in the data plane's queue (not those being handled), by the broker.",
    ["data_plane"],
)
QUEUE_CONSUMERS = Gauge(
    "promenade_queue_consumers",
    "Consumers of the data plane's command queue (of every worker), by the broker.",
    ["data_plane"],
)

P = ParamSpec("P")
R = TypeVar("R")


def timed_step(
    step: ChangeStatus,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Observes the step's duration in ``promenade_step_duration_seconds``, whether it ended
    well or not (a refused step is a step too; one that raised is observed as well)."""
    observe = STEP_SECONDS.labels(step.value).observe

    def decorate(run: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(run)
        async def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await run(*args, **kwargs)
            finally:
                observe(time.perf_counter() - started)

        return timed

    return decorate


def count_finished(session: AsyncSession, change: DeploymentChange) -> None:
    """Counts the change in ``promenade_changes_finished`` once the session commits the final
    status it was just given (a transaction that rolls back counts nothing)."""
    increment = CHANGES_FINISHED.labels(change.kind.value, change.status.value).inc
    rolled_back = False

    def on_commit(_: object) -> None:
        if not rolled_back:
            increment()

    def on_rollback(_: object) -> None:
        nonlocal rolled_back
        rolled_back = True

    event.listen(session.sync_session, "after_commit", on_commit, once=True)
    event.listen(session.sync_session, "after_rollback", on_rollback, once=True)


async def report_data_plane(bus: Bus, plane: ServedDataPlane, runtime: Runtime) -> None:
    """The data plane's queue (from the broker) and instances (from the runtime), now."""
    depth = await bus.queue_depth(plane.routing_key)
    QUEUE_READY.labels(plane.label).set(depth.ready)
    QUEUE_CONSUMERS.labels(plane.label).set(depth.consumers)
    INSTANCES.labels(plane.label).set(len(await runtime.deployments()))


def count_restart(plane_label: str) -> None:
    INSTANCE_RESTARTS.labels(plane_label).inc()
