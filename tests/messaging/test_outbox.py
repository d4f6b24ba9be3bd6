"""The transactional outbox and its relay, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import create_engine, create_session_factory
from app.messaging.bus import Bus, Message
from app.messaging.inprocess import InProcessBus
from app.messaging.outbox import OutboxRelay, enqueue
from app.messaging.rabbit import RabbitBus
from app.models import OutboxMessage
from tests.messaging.conftest import (
    TEST_RECONNECT_INTERVAL,
    TEST_RETRY_DELAY,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import until

QUIET = 0.3


class FlakyBus(InProcessBus):
    """The in-process bus, with a switch that makes every publish fail as an unreachable
    broker does."""

    def __init__(self) -> None:
        super().__init__(retry_delay=TEST_RETRY_DELAY)
        self.down = False
        self.attempts = 0

    async def publish_command(self, message: Message) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().publish_command(message)

    async def publish_event(self, message: Message) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().publish_event(message)


class Inbox:
    """What a data plane's consumer and an event subscriber received."""

    def __init__(self) -> None:
        self.commands: list[Message] = []
        self.events: list[Message] = []

    async def command(self, message: Message) -> None:
        self.commands.append(message)

    async def event(self, message: Message) -> None:
        self.events.append(message)

    def command_ids(self) -> list[str]:
        return [message.message_id for message in self.commands]


def fast_relay(engine: AsyncEngine, bus: Bus) -> OutboxRelay:
    return OutboxRelay(
        create_session_factory(engine),
        bus,
        poll_interval=0.05,
        first_retry_delay=0.02,
        max_retry_delay=0.1,
    )


class Relays:
    """Relays a test runs in the background; stopped after the test, and their ``run()``
    must have ended without an exception."""

    def __init__(self) -> None:
        self._running: list[tuple[OutboxRelay, asyncio.Task[None]]] = []

    def start(self, relay: OutboxRelay) -> OutboxRelay:
        self._running.append((relay, asyncio.create_task(relay.run())))
        return relay

    async def stop_all(self) -> None:
        for relay, task in self._running:
            await relay.stop()
            await task
        self._running.clear()


@pytest.fixture
async def relays() -> AsyncIterator[Relays]:
    running = Relays()
    yield running
    await running.stop_all()


async def unpublished(session: AsyncSession) -> list[str]:
    rows = await session.exec(
        select(OutboxMessage.id).where(col(OutboxMessage.published_at).is_(None))
    )
    return list(rows.all())


async def test_rows_of_a_rolled_back_transaction_are_never_published(
    engine: AsyncEngine, session: AsyncSession, data_plane: str, relays: Relays
) -> None:
    bus = InProcessBus()
    inbox = Inbox()
    await bus.consume_commands(data_plane, inbox.command, concurrency=1)

    await enqueue(session, exchange="command", routing_key=data_plane, body={"n": "lost"})
    await session.rollback()
    kept = await enqueue(session, exchange="command", routing_key=data_plane, body={"n": "kept"})
    await session.commit()

    relay = relays.start(fast_relay(engine, bus))
    relay.wake()
    await until(lambda: len(inbox.commands) == 1, what="the committed command")
    await asyncio.sleep(QUIET)

    assert [message.body for message in inbox.commands] == [{"n": "kept"}]
    assert inbox.command_ids() == [kept.id]
    await bus.close()


async def test_committed_rows_are_published_once_in_order_and_marked(
    engine: AsyncEngine, session: AsyncSession, data_plane: str, relays: Relays
) -> None:
    bus = InProcessBus()
    inbox = Inbox()
    await bus.consume_commands(data_plane, inbox.command, concurrency=1)
    await bus.subscribe_events(inbox.event, pattern=f"promotion.{data_plane}")

    rows = [
        await enqueue(session, exchange="command", routing_key=data_plane, body={"n": n})
        for n in range(5)
    ]
    event = await enqueue(
        session, exchange="event", routing_key=f"promotion.{data_plane}", body={"s": "QUEUED"}
    )
    await session.commit()

    relay = relays.start(fast_relay(engine, bus))
    await until(lambda: len(inbox.commands) == 5 and len(inbox.events) == 1, what="all")
    # More rounds find nothing left to publish.
    for _ in range(3):
        relay.wake()
        await asyncio.sleep(0.1)

    assert inbox.command_ids() == [row.id for row in rows]
    assert [message.body["n"] for message in inbox.commands] == list(range(5))
    assert [message.message_id for message in inbox.events] == [event.id]
    session.expunge_all()
    assert await unpublished(session) == []
    marked = (await session.exec(select(OutboxMessage))).all()
    assert all(row.published_at is not None for row in marked)
    await bus.close()


async def test_rows_wait_while_the_broker_is_down_and_go_out_when_it_is_back(
    engine: AsyncEngine,
    session: AsyncSession,
    data_plane: str,
    relays: Relays,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FlakyBus()
    bus.down = True
    inbox = Inbox()
    await bus.consume_commands(data_plane, inbox.command, concurrency=1)
    rows = [
        await enqueue(session, exchange="command", routing_key=data_plane, body={"n": n})
        for n in range(3)
    ]
    await session.commit()

    caplog.set_level(logging.WARNING, logger="app.messaging.outbox")
    relay = relays.start(fast_relay(engine, bus))
    await until(lambda: bus.attempts >= 5, what="several attempts")
    for _ in range(5):
        relay.wake()  # requests keep coming during the outage
    await asyncio.sleep(QUIET)

    assert inbox.commands == []
    assert sorted(await unpublished(session)) == sorted(row.id for row in rows)
    outage = [r for r in caplog.records if "cannot publish" in r.getMessage()]
    assert len(outage) == 1, "the outage is logged once, not per attempt or per row"

    bus.down = False
    await until(lambda: len(inbox.commands) == 3, what="the rows after the outage")
    await asyncio.sleep(QUIET)
    assert inbox.command_ids() == [row.id for row in rows]
    assert any("publishing again" in r.getMessage() for r in caplog.records)
    session.expunge_all()
    assert await unpublished(session) == []
    await bus.close()


class RefusingBus(InProcessBus):
    """Refuses the publish of one message id once, as a broker that nacks it does."""

    def __init__(self, refuse: str) -> None:
        super().__init__(retry_delay=TEST_RETRY_DELAY)
        self.refuse: str | None = refuse
        self.sent: list[str] = []

    async def publish_command(self, message: Message) -> None:
        self.sent.append(message.message_id)
        if message.message_id == self.refuse:
            self.refuse = None
            raise ConnectionError("nacked")
        await super().publish_command(message)


async def test_a_refused_publish_marks_the_rows_before_it_and_sends_the_rest_again(
    engine: AsyncEngine, session: AsyncSession, data_plane: str
) -> None:
    rows = [
        await enqueue(session, exchange="command", routing_key=data_plane, body={"n": n})
        for n in range(5)
    ]
    await session.commit()
    ids = [row.id for row in rows]
    bus = RefusingBus(refuse=ids[2])
    inbox = Inbox()
    await bus.consume_commands(data_plane, inbox.command, concurrency=1)
    relay = fast_relay(engine, bus)

    with pytest.raises(ConnectionError):
        await relay.publish_pending()
    # The whole batch went out at once; only what precedes the refusal counts as published.
    assert bus.sent == ids
    session.expunge_all()
    assert sorted(await unpublished(session)) == ids[2:]

    assert await relay.publish_pending() == 3
    assert bus.sent == ids + ids[2:]
    session.expunge_all()
    assert await unpublished(session) == []
    await until(lambda: len(inbox.commands) == 7, what="every copy delivered")
    # Rows 4 and 5 arrived twice, with the same message id: at least once, never lost.
    assert Counter(inbox.command_ids()) == {ids[0]: 1, ids[1]: 1, ids[2]: 1, ids[3]: 2, ids[4]: 2}
    await bus.close()


async def test_batches_reach_rabbitmq_in_the_order_of_their_rows(
    engine: AsyncEngine,
    session: AsyncSession,
    amqp_url: str,
    data_plane: str,
    rabbit_queues: None,
    relays: Relays,
) -> None:
    bus = RabbitBus(amqp_url, retry_delay=TEST_RETRY_DELAY)
    inbox = Inbox()
    try:
        await bus.consume_commands(data_plane, inbox.command, concurrency=1)
        await bus.subscribe_events(inbox.event, pattern=f"promotion.{data_plane}")
        commands: list[str] = []
        events: list[str] = []
        for n in range(250):  # more than two batches, commands and events interleaved
            if n % 3:
                row = await enqueue(session, exchange="command", routing_key=data_plane, body={})
                commands.append(row.id)
            else:
                key = f"promotion.{data_plane}"
                events.append(
                    (await enqueue(session, exchange="event", routing_key=key, body={})).id
                )
        await session.commit()

        relays.start(fast_relay(engine, bus))
        await until(
            lambda: len(inbox.commands) == len(commands) and len(inbox.events) == len(events),
            what="every row delivered",
        )
        assert inbox.command_ids() == commands
        assert [message.message_id for message in inbox.events] == events
        session.expunge_all()
        assert await unpublished(session) == []
    finally:
        await relays.stop_all()
        await bus.close()


async def test_the_relay_rides_out_a_rabbitmq_outage(
    engine: AsyncEngine,
    session: AsyncSession,
    amqp_url: str,
    broker_proxy: TcpProxy,
    data_plane: str,
    rabbit_queues: None,
    relays: Relays,
) -> None:
    # The relay reaches the broker through the proxy, which is down at first; the consumer
    # reaches it directly.
    relaying = RabbitBus(
        broker_proxy.url, retry_delay=TEST_RETRY_DELAY, reconnect_interval=TEST_RECONNECT_INTERVAL
    )
    consuming = RabbitBus(amqp_url, retry_delay=TEST_RETRY_DELAY)
    inbox = Inbox()
    try:
        await consuming.consume_commands(data_plane, inbox.command, concurrency=1)
        first = await enqueue(session, exchange="command", routing_key=data_plane, body={"n": 1})
        await session.commit()
        relay = relays.start(fast_relay(engine, relaying))
        await asyncio.sleep(QUIET)
        assert inbox.commands == []
        assert await unpublished(session) == [first.id]

        await broker_proxy.up()
        await until(lambda: inbox.command_ids() == [first.id], what="the first row")

        # Broker gone again while the relay is connected: the robust connection comes back.
        await broker_proxy.down()
        second = await enqueue(session, exchange="command", routing_key=data_plane, body={"n": 2})
        await session.commit()
        relay.wake()
        await asyncio.sleep(QUIET)
        session.expunge_all()
        assert await unpublished(session) == [second.id]
        await broker_proxy.up()
        await until(lambda: inbox.command_ids() == [first.id, second.id], what="the second row")
        await asyncio.sleep(QUIET)
        assert inbox.command_ids() == [first.id, second.id]
    finally:
        await relays.stop_all()
        await relaying.close()
        await consuming.close()


class RecordingBus(InProcessBus):
    """Records what it publishes, in the order it was sent; the confirm of each takes a
    moment, as a broker's does."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[str] = []

    async def publish_command(self, message: Message) -> None:
        self.published.append(message.message_id)
        await asyncio.sleep(0.002)


@pytest.fixture
async def postgres_engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.execute(text("TRUNCATE outbox"))
    yield engine
    await engine.dispose()


async def test_two_relays_on_postgresql_publish_each_row_once(
    postgres_engine: AsyncEngine, data_plane: str, relays: Relays
) -> None:
    sessions = create_session_factory(postgres_engine)
    async with sessions() as session:
        ids = [
            (await enqueue(session, exchange="command", routing_key=data_plane, body={"n": n})).id
            for n in range(200)
        ]
        await session.commit()

    buses = [RecordingBus(), RecordingBus()]
    for bus in buses:
        relays.start(OutboxRelay(sessions, bus, batch_size=10, poll_interval=0.05))
    await until(lambda: sum(len(bus.published) for bus in buses) >= 200, what="every row published")
    await asyncio.sleep(QUIET)

    published = Counter(buses[0].published + buses[1].published)
    assert set(published) == set(ids)
    assert [i for i, times in published.items() if times > 1] == []
    # Both relays took part: the locks, not luck, kept them apart.
    assert all(len(bus.published) >= 20 for bus in buses)
    # Each relay published its rows oldest first.
    for bus in buses:
        assert bus.published == sorted(bus.published)
