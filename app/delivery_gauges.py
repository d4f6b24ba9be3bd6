"""The delivery metrics (the four DORA keys, app/services/delivery_metrics.py) of the last 30
days as gauges on the API's ``/metrics``, per organization, project and environment.

Gauges read from the database rather than counters incremented where changes end: a change
failure is known only once a later rollback undoes it, lead times and times to restore are
percentiles over a window, and every API replica then reports the same values (aggregate
with max(), never sum()) whatever restarted. They are the same figures as
``Project.deliveryMetrics`` with its default window.

The labels are the organization's and the project's slugs and the environment's name (never
ids), for the pairs with a change that ended in the window only; at most MAX_PAIRS of them
(the most active first), the rest counted by ``promenade_delivery_pairs_dropped``. The reading
costs the service's statement over every project: it is made at most once every
REFRESH_S seconds, and a scrape in between reports the last one.
"""

from __future__ import annotations

import time

from prometheus_client import Gauge
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from app.metrics import Refresher
from app.models import Environment, Organization, Project
from app.services.delivery_metrics import DEFAULT_WINDOW, Percentiles, delivery_metrics, window_of

REFRESH_S = 60.0
MAX_PAIRS = 500
LABELS = ["organization", "project", "environment"]
QUANTILES = {"0.5": "median", "0.9": "p90"}

DEPLOYMENTS = Gauge(
    "promenade_delivery_deployments",
    "Deployment frequency: changes (DEPLOY, PROMOTION, CONFIG_CHANGE, RESTART) that succeeded "
    "in the last 30 days.",
    LABELS,
)
CHANGES = Gauge(
    "promenade_delivery_changes",
    "Changes (DEPLOY, PROMOTION, CONFIG_CHANGE, RESTART) that ended, succeeded or failed, in the "
    "last 30 days.",
    LABELS,
)
FAILED_CHANGES = Gauge(
    "promenade_delivery_failed_changes",
    "Changes of the last 30 days that failed or were later rolled back.",
    LABELS,
)
CHANGE_FAILURE_RATE = Gauge(
    "promenade_delivery_change_failure_rate",
    "Change failure rate: failed changes over changes, last 30 days.",
    LABELS,
)
LEAD_TIME = Gauge(
    "promenade_delivery_lead_time_seconds",
    "Lead time, from a build's creation to its first successful change in the environment, "
    "of the builds first run there in the last 30 days: quantiles 0.5 and 0.9.",
    [*LABELS, "quantile"],
)
TIME_TO_RESTORE = Gauge(
    "promenade_delivery_time_to_restore_seconds",
    "Time to restore, from a failed change's end to the deployment's next success (of a "
    "rolled-back one, to the rollback), failures of the last 30 days: quantiles 0.5 and 0.9.",
    [*LABELS, "quantile"],
)
PAIRS_DROPPED = Gauge(
    "promenade_delivery_pairs_dropped",
    f"(project, environment) pairs with changes in the last 30 days beyond the {MAX_PAIRS} "
    "reported.",
)
GAUGES = (DEPLOYMENTS, CHANGES, FAILED_CHANGES, CHANGE_FAILURE_RATE, LEAD_TIME, TIME_TO_RESTORE)


def _set_quantiles(gauge: Gauge, labels: tuple[str, str, str], percentiles: Percentiles) -> None:
    for quantile, name in QUANTILES.items():
        value = getattr(percentiles, name)
        if value is not None:
            gauge.labels(*labels, quantile).set(value)


def delivery_refresher(engine: AsyncEngine) -> Refresher:
    """Reads the gauges, at most once every REFRESH_S seconds."""
    last: float | None = None

    async def refresh() -> None:
        nonlocal last
        now = time.monotonic()
        if last is not None and now - last < REFRESH_S:
            return
        window = window_of(since=None, until=None)
        assert window.until - window.since == DEFAULT_WINDOW
        async with engine.connect() as connection:
            found = await delivery_metrics(connection, window=window)
            projects = {p for p, _ in found}
            environments = {e for _, e in found}
            names = await connection.execute(
                select(col(Project.id), col(Project.slug), col(Organization.slug))
                .join(Organization, col(Organization.id) == col(Project.organization_id))
                .where(col(Project.id).in_(sorted(projects)))
            )
            project_names = {row[0]: (row[2], row[1]) for row in names.all()}
            rows = await connection.execute(
                select(col(Environment.id), col(Environment.name)).where(
                    col(Environment.id).in_(sorted(environments))
                )
            )
            environment_names = {row[0]: row[1] for row in rows.all()}
        ranked = sorted(found.values(), key=lambda m: (-m.changes, m.project_id, m.environment_id))
        for gauge in GAUGES:
            gauge.clear()
        for figures in ranked[:MAX_PAIRS]:
            organization, project = project_names[figures.project_id]
            labels = (organization, project, environment_names[figures.environment_id])
            DEPLOYMENTS.labels(*labels).set(figures.deployments)
            CHANGES.labels(*labels).set(figures.changes)
            FAILED_CHANGES.labels(*labels).set(figures.failed_changes)
            rate = figures.change_failure_rate
            assert rate is not None  # a pair is reported once a change ended there
            CHANGE_FAILURE_RATE.labels(*labels).set(rate)
            _set_quantiles(LEAD_TIME, labels, figures.lead_time)
            _set_quantiles(TIME_TO_RESTORE, labels, figures.time_to_restore)
        PAIRS_DROPPED.set(max(len(ranked) - MAX_PAIRS, 0))
        last = now  # a reading that failed is tried again at the next scrape

    return refresh
