"""The transactional outbox: messages are rows written in the transaction of the change they
announce (``enqueue``), and ``OutboxRelay`` publishes them once that transaction committed.

A row rolled back with its transaction is never published. A committed row is published at
least once: the relay marks it published only after the broker confirmed it, so a broker that
is down delays it and never loses it, and a relay that dies between the confirm and its own
commit publishes it again on the next run. The message id is the row's id, the same for every
copy: consumers deduplicate on ``Message.message_id`` (or do work that is idempotent anyway).

Order: one relay publishes a batch oldest first (by id, a ULID that sorts by creation time) and
waits for the broker's confirms of the whole batch at once, so the messages of one relay reach a
queue in the order of their rows. Several relays (one per API replica, on PostgreSQL) each lock
their own batch (``FOR UPDATE SKIP LOCKED``), so no row is published by two relays at once, but
batches of different relays may interleave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from app.db import SessionFactory
from app.messaging.bus import Bus, Message
from app.models import OutboxMessage
from app.models.base import utcnow

# Services write the rows (app.services.outbox, one layer below this one, so that they need
# nothing from messaging); re-exported here, beside the relay that reads them.
from app.services.outbox import enqueue

__all__ = ["COMMAND", "EVENT", "OutboxRelay", "enqueue"]

log = logging.getLogger(__name__)

COMMAND = "command"
EVENT = "event"

BATCH_SIZE = 100
POLL_INTERVAL = 0.5
# After a failure the relay waits FIRST_RETRY_DELAY, doubling up to MAX_RETRY_DELAY.
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 5.0


class OutboxRelay:
    """Publishes committed outbox rows through the bus, oldest first, and marks them.

    ``run()`` loops until ``stop()``: it publishes what is waiting, then sleeps until ``wake()``
    (call it after a commit that wrote to the outbox) or ``poll_interval`` seconds, whichever
    comes first. A failure (broker or database unreachable) is logged once per outage and
    retried with a growing, capped pause; rows stay in the outbox until they are published.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        bus: Bus,
        *,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL,
        first_retry_delay: float = FIRST_RETRY_DELAY,
        max_retry_delay: float = MAX_RETRY_DELAY,
    ) -> None:
        self._sessions = sessions
        self._bus = bus
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._first_retry_delay = first_retry_delay
        self._max_retry_delay = max_retry_delay
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: asyncio.Future[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    async def run(self) -> None:
        if self._running is not None:
            raise RuntimeError("the relay is running already")
        self._running = asyncio.get_running_loop().create_future()
        try:
            await self._loop()
        finally:
            self._running.set_result(None)

    async def stop(self) -> None:
        """End the loop after the batch in hand (whose published rows are marked first)."""
        self._stopping.set()
        if self._running is not None:
            await asyncio.shield(self._running)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            published = await self._publish_when_possible()
            if published is None:
                return  # stopped during an outage
            if published < self._batch_size:
                # A poll, not a retry: rows that a commit elsewhere wrote (another replica, a
                # worker) are found within poll_interval; wake() cuts it short.
                await self._sleep(self._poll_interval, wakeable=True)

    async def _publish_when_possible(self) -> int | None:
        """``publish_pending``, retried while it fails with a pause from ``first_retry_delay``
        doubling up to ``max_retry_delay``; None when ``stop()`` came first."""

        async def attempt() -> int | None:
            if self._stopping.is_set():
                return None
            return await self.publish_pending()

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=self._first_retry_delay, max=self._max_retry_delay),
            # During an outage wake() does not cut the pause short: every request would retry.
            sleep=lambda seconds: self._sleep(seconds, wakeable=False),
            before_sleep=_log_failure,
        )
        published: int | None = await retrying(attempt)
        if published is not None and retrying.statistics["attempt_number"] > 1:
            log.warning(
                "Outbox relay publishing again after %.1f s",
                time.monotonic() - retrying.statistics["start_time"],
            )
        return published

    async def _sleep(self, seconds: float, *, wakeable: bool) -> None:
        events = [self._stopping.wait()]
        if wakeable:
            events.append(self._wakeup.wait())
        tasks = [asyncio.ensure_future(event) for event in events]
        try:
            await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished rows and mark them; returns how many. Raises when
        a publish fails, after marking the rows published before it."""
        async with self._sessions() as session:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":
                return await self._publish_locked(session)
            return await self._publish_unlocked(session)

    def _pending(self) -> SelectOfScalar[OutboxMessage]:
        return (
            select(OutboxMessage)
            .where(col(OutboxMessage.published_at).is_(None))
            .where(col(OutboxMessage.exchange).in_((COMMAND, EVENT)))
            .order_by(col(OutboxMessage.id))
            .limit(self._batch_size)
        )

    async def _publish_locked(self, session: AsyncSession) -> int:
        """PostgreSQL: one transaction holds the batch's row locks while it is published, so
        that another relay skips these rows; the marks are committed with it."""
        rows = (await session.exec(self._pending().with_for_update(skip_locked=True))).all()
        published: list[OutboxMessage] = []
        try:
            await self._publish(rows, published)
        finally:
            now = utcnow()
            for row in published:
                row.published_at = now
                session.add(row)
            await session.commit()
        return len(rows)

    async def _publish_unlocked(self, session: AsyncSession) -> int:
        """SQLite: read in one short transaction, mark in another. A read transaction held
        across the publishing could not become a write one once an API request committed
        meanwhile (SQLITE_BUSY, which the busy timeout does not wait out). SQLite means one
        process, hence one relay: nobody else publishes these rows."""
        rows = (await session.exec(self._pending())).all()
        session.expunge_all()  # detached rows keep their values through the rollback
        await session.rollback()
        published: list[OutboxMessage] = []
        try:
            await self._publish(rows, published)
        finally:
            if published:
                await session.exec(
                    update(OutboxMessage)
                    .where(col(OutboxMessage.id).in_([row.id for row in published]))
                    .values(published_at=utcnow())
                )
                await session.commit()
        return len(rows)

    async def _publish(self, rows: Sequence[OutboxMessage], published: list[OutboxMessage]) -> None:
        """Publish the rows together and wait for all their confirms at once, then append the
        confirmed ones before the first failure to ``published``; that failure raises and the
        rest waits for the next round.

        The publishes start in the rows' order and none waits before it reaches the channel
        (its FIFO lock), so the broker takes them in that order; only the confirms are awaited
        together. A row after a failed one that the broker did confirm is published again next
        round: a duplicate with the same message id, which consumers drop."""
        outcomes = await asyncio.gather(
            *(self._publish_row(row) for row in rows), return_exceptions=True
        )
        for row, outcome in zip(rows, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            published.append(row)

    async def _publish_row(self, row: OutboxMessage) -> None:
        message = Message(message_id=row.id, routing_key=row.routing_key, body=row.body)
        if row.exchange == COMMAND:
            await self._bus.publish_command(message)
        else:
            await self._bus.publish_event(message)


def _log_failure(state: RetryCallState) -> None:
    """Once per outage at WARNING, the attempts after the first at DEBUG."""
    assert state.outcome is not None
    exc = state.outcome.exception()
    if state.attempt_number == 1:
        log.warning(
            "Outbox relay cannot publish (%s: %s); retrying until it can", type(exc).__name__, exc
        )
    else:
        log.debug("Outbox relay still failing: %r", exc)
