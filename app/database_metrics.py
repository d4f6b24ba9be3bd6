"""What the API reports of the database at each scrape: requests (Promotion rows) and changes
by status and kind, requests waiting for approval, and the outbox's backlog and its oldest row's
age. Read by ``database_refresher`` when ``/metrics`` is scraped, on the API only (a worker's
``/metrics`` reports its own work, not the database's: these gauges are not even defined
there).

Every replica reads the same rows, so each reports the same values: aggregate them with max()
(or scrape one replica), never sum().
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from app.metrics import Refresher
from app.models import (
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    OutboxMessage,
    Promotion,
    PromotionStatus,
    RequestKind,
)
from app.models.base import utcnow

PROMOTIONS = Gauge(
    "promenade_promotions",
    "Promotions and other requests (a Promotion row of each kind) by status, in the database.",
    ["status", "kind"],
)
CHANGES = Gauge(
    "promenade_changes",
    "Changes of deployments by status and kind, in the database.",
    ["status", "kind"],
)
APPROVALS_PENDING = Gauge(
    "promenade_approval_requests_pending",
    "Requests that wait for their approvals (PENDING_APPROVAL), by kind, in the database.",
    ["kind"],
)
OUTBOX_BACKLOG = Gauge(
    "promenade_outbox_backlog",
    "Outbox rows not published yet (commands and events), in the database.",
)
OUTBOX_OLDEST_AGE = Gauge(
    "promenade_outbox_oldest_age_seconds",
    "Age of the oldest outbox row not published yet; 0 when none waits.",
)


def _set_counts(
    gauge: Gauge,
    statuses: Iterable[str],
    kinds: Iterable[str],
    counts: dict[tuple[str, str], int],
) -> None:
    """Every (status, kind) pair, zero when no row has it: a series does not vanish when its
    last row moves on, and the pairs are a fixed, bounded set."""
    kinds = list(kinds)
    for status in statuses:
        for kind in kinds:
            gauge.labels(status, kind).set(counts.get((status, kind), 0))


def database_refresher(engine: AsyncEngine) -> Refresher:
    """Reads the database-wide gauges: three statements on one connection, each a count
    grouped by bounded columns (the outbox's uses its index on ``published_at``)."""
    promotion_statuses = [status.value for status in PromotionStatus]
    request_kinds = [kind.value for kind in RequestKind]
    change_statuses = [status.value for status in ChangeStatus]
    change_kinds = [kind.value for kind in ChangeKind]
    promotion_status, promotion_kind = col(Promotion.status), col(Promotion.kind)
    change_status, change_kind = col(DeploymentChange.status), col(DeploymentChange.kind)
    created_at, published_at = col(OutboxMessage.created_at), col(OutboxMessage.published_at)

    async def refresh() -> None:
        async with engine.connect() as connection:
            promotions = await connection.execute(
                select(promotion_status, promotion_kind, func.count()).group_by(
                    promotion_status, promotion_kind
                )
            )
            promotion_counts = {(str(s), str(k)): int(n) for s, k, n in promotions.all()}
            changes = await connection.execute(
                select(change_status, change_kind, func.count()).group_by(
                    change_status, change_kind
                )
            )
            change_counts = {(str(s), str(k)): int(n) for s, k, n in changes.all()}
            backlog, oldest = (
                await connection.execute(
                    select(func.count(), func.min(created_at)).where(published_at.is_(None))
                )
            ).one()
        _set_counts(PROMOTIONS, promotion_statuses, request_kinds, promotion_counts)
        _set_counts(CHANGES, change_statuses, change_kinds, change_counts)
        for kind in request_kinds:
            pending = promotion_counts.get((PromotionStatus.PENDING_APPROVAL.value, kind), 0)
            APPROVALS_PENDING.labels(kind).set(pending)
        OUTBOX_BACKLOG.set(int(backlog))
        age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
        OUTBOX_OLDEST_AGE.set(max(age, 0.0))

    return refresh
