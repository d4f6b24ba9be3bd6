"""The bus contract (app/messaging/bus.py), on RabbitMQ and in process: the same tests for both."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import aio_pika
import pytest

from app.messaging.bus import (
    COMMANDS_EXCHANGE,
    DELIVERY_LIMIT,
    Bus,
    Message,
    NoResponder,
    QueueDepth,
    command_queue,
)
from app.messaging.rabbit import QUEUE_DELIVERY_LIMIT, RabbitBus, command_queue_arguments
from tests.messaging.conftest import (
    TEST_RECONNECT_INTERVAL,
    TEST_RETRY_DELAY,
    Buses,
)
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually, until

# How long a test waits to be confident that something does NOT happen.
QUIET = 0.3


def command(data_plane: str, n: int = 0) -> Message:
    return Message(
        message_id=f"msg_{uuid.uuid4().hex}", routing_key=data_plane, body={"n": n, "ok": True}
    )


async def test_a_published_command_is_handled_once_and_acknowledged(
    buses: Buses, bus: Bus, data_plane: str
) -> None:
    received: list[Message] = []

    async def handle(message: Message) -> None:
        received.append(message)

    # Published before any consumer exists: it waits in the data plane's queue.
    sent = command(data_plane)
    await bus.publish_command(sent)
    consumer = await bus.consume_commands(data_plane, handle, concurrency=2)
    await until(lambda: len(received) == 1, what="the command")
    await asyncio.sleep(QUIET)
    await consumer.stop()

    assert received == [sent]
    # Acknowledged: a consumer on a new connection does not get it again.
    again: list[Message] = []

    async def handle_again(message: Message) -> None:
        again.append(message)

    other = await (await buses.open()).consume_commands(data_plane, handle_again, concurrency=1)
    await asyncio.sleep(QUIET)
    await other.stop()
    assert again == []


async def test_queue_depth_counts_the_ready_commands_and_the_consumers(
    bus: Bus, data_plane: str
) -> None:
    async def depth_is(ready: int, consumers: int) -> bool:
        # RabbitMQ's counts of a quorum queue follow its confirms and acks by a moment.
        return await bus.queue_depth(data_plane) == QueueDepth(ready, consumers)

    assert await depth_is(0, 0)
    for n in range(3):
        await bus.publish_command(command(data_plane, n))
    await eventually(lambda: depth_is(3, 0), what="3 commands ready")

    release = asyncio.Event()
    taken: list[Message] = []

    async def hold(message: Message) -> None:
        taken.append(message)
        await release.wait()

    consumer = await bus.consume_commands(data_plane, hold, concurrency=1)
    await until(lambda: len(taken) == 1, what="the first command")
    # The one being handled is not ready; the two behind it are.
    await eventually(lambda: depth_is(2, 1), what="2 ready and 1 consumer")
    release.set()
    await until(lambda: len(taken) == 3, what="every command")
    await consumer.stop()
    await eventually(lambda: depth_is(0, 0), what="an empty queue without consumers")


async def test_a_failed_delivery_comes_again_until_the_handler_succeeds(
    bus: Bus, data_plane: str
) -> None:
    attempts: list[str] = []
    dead: list[Message] = []

    async def flaky(message: Message) -> None:
        attempts.append(message.message_id)
        if len(attempts) < 3:
            raise RuntimeError("database restarting")

    async def dead_letter(message: Message) -> None:
        dead.append(message)

    await bus.consume_dead_letters(data_plane, dead_letter)
    sent = command(data_plane)
    await bus.consume_commands(data_plane, flaky, concurrency=1)
    await bus.publish_command(sent)
    await until(lambda: len(attempts) == 3, what="three deliveries")
    await asyncio.sleep(QUIET)

    assert attempts == [sent.message_id] * 3
    assert dead == []


async def test_a_command_that_keeps_failing_is_dead_lettered_after_the_delivery_limit(
    bus: Bus, data_plane: str
) -> None:
    attempts: list[Message] = []
    times: list[float] = []
    dead: list[Message] = []

    async def always_fails(message: Message) -> None:
        attempts.append(message)
        times.append(time.monotonic())
        raise RuntimeError("poison")

    async def dead_letter(message: Message) -> None:
        dead.append(message)

    await bus.consume_commands(data_plane, always_fails, concurrency=1)
    await bus.consume_dead_letters(data_plane, dead_letter)
    sent = command(data_plane)
    await bus.publish_command(sent)
    await until(lambda: len(dead) == 1, what="the dead letter")
    await asyncio.sleep(QUIET)

    # DELIVERY_LIMIT deliveries in all, then the dead-letter queue, and nothing more.
    assert attempts == [sent] * DELIVERY_LIMIT
    assert dead == [sent]
    # Each retry waits twice as long as the one before.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for failures, gap in enumerate(gaps):
        assert gap >= 0.9 * TEST_RETRY_DELAY * 2**failures, gaps


async def test_concurrency_bounds_the_handlers_running_at_once(bus: Bus, data_plane: str) -> None:
    running = 0
    most = 0
    handled: list[int] = []

    async def slow(message: Message) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        handled.append(message.body["n"])

    await bus.consume_commands(data_plane, slow, concurrency=3)
    for n in range(12):
        await bus.publish_command(command(data_plane, n))
    await until(lambda: len(handled) == 12, what="twelve commands")

    assert most == 3
    assert sorted(handled) == list(range(12))


async def test_stop_waits_for_the_running_handler_and_starts_no_other(
    buses: Buses, bus: Bus, data_plane: str
) -> None:
    started: list[int] = []
    finished: list[int] = []
    release = asyncio.Event()

    async def blocking(message: Message) -> None:
        started.append(message.body["n"])
        await release.wait()
        finished.append(message.body["n"])

    consumer = await bus.consume_commands(data_plane, blocking, concurrency=1)
    await bus.publish_command(command(data_plane, 1))
    await bus.publish_command(command(data_plane, 2))
    await until(lambda: started == [1], what="the first handler")

    stopping = asyncio.create_task(consumer.stop())
    await asyncio.sleep(QUIET)
    assert not stopping.done(), "stop() returned while a handler was running"
    release.set()
    await stopping
    assert finished == [1]
    await asyncio.sleep(QUIET)
    assert started == [1], "a message started after stop()"

    # The second one is still there for the next consumer.
    later: list[int] = []

    async def record(message: Message) -> None:
        later.append(message.body["n"])

    await (await buses.open()).consume_commands(data_plane, record, concurrency=1)
    await until(lambda: later == [2], what="the second command")


async def test_events_reach_every_subscriber_in_publish_order(bus: Bus, data_plane: str) -> None:
    first: list[str] = []
    second: list[str] = []

    async def to_first(message: Message) -> None:
        first.append(message.routing_key)

    async def to_second(message: Message) -> None:
        # Slower, by a varying amount: handled concurrently, they would come out of order.
        await asyncio.sleep(0.003 * (2 - message.body["n"] % 3))
        second.append(message.routing_key)

    pattern = f"{data_plane}.promotion.*"
    await bus.subscribe_events(to_first, pattern=pattern)
    await bus.subscribe_events(to_second, pattern=pattern)
    expected = []
    for n in range(30):
        key = f"{data_plane}.promotion.{n}"
        expected.append(key)
        await bus.publish_event(Message(message_id=f"evt_{n}", routing_key=key, body={"n": n}))
        # Another topic: no subscriber here matches it.
        other = Message(message_id=f"dep_{n}", routing_key=f"{data_plane}.deployment.{n}", body={})
        await bus.publish_event(other)
    await until(lambda: len(first) == 30 and len(second) == 30, what="thirty events each")
    await asyncio.sleep(QUIET)

    assert first == expected
    assert second == expected


async def test_a_stopped_subscriber_gets_no_more_events(bus: Bus, data_plane: str) -> None:
    seen: list[str] = []

    async def record(message: Message) -> None:
        seen.append(message.message_id)

    subscriber = await bus.subscribe_events(record, pattern=f"{data_plane}.#")
    await bus.publish_event(Message(message_id="one", routing_key=f"{data_plane}.x", body={}))
    await until(lambda: seen == ["one"], what="the first event")
    await subscriber.stop()
    await bus.publish_event(Message(message_id="two", routing_key=f"{data_plane}.x", body={}))
    await asyncio.sleep(QUIET)
    assert seen == ["one"]


async def test_the_unacknowledged_message_of_a_closed_connection_goes_to_another_consumer(
    buses: Buses, data_plane: str
) -> None:
    first = await buses.open()
    started: list[str] = []

    async def hangs(message: Message) -> None:
        started.append(message.message_id)
        await asyncio.Event().wait()

    await first.consume_commands(data_plane, hangs, concurrency=1)
    sent = command(data_plane)
    await first.publish_command(sent)
    await until(lambda: started == [sent.message_id], what="the first consumer")

    # The connection goes away with the message unacknowledged (a worker killed, say).
    await first.close()
    redelivered: list[Message] = []

    async def record(message: Message) -> None:
        redelivered.append(message)

    second = await buses.open()
    await second.consume_commands(data_plane, record, concurrency=1)
    await until(lambda: redelivered == [sent], what="the redelivery")


# ---- RabbitMQ only: the broker itself ----------------------------------------------------------


async def test_the_command_queue_is_a_quorum_queue_with_the_documented_arguments(
    amqp_url: str, data_plane: str, rabbit_queues: None
) -> None:
    bus = RabbitBus(amqp_url)
    await bus.publish_command(command(data_plane))
    await bus.close()
    connection = await aio_pika.connect(amqp_url)
    try:
        # Declaring with the same arguments is accepted; with one of them different, refused.
        channel = await connection.channel()
        queue = await channel.declare_queue(
            command_queue(data_plane), durable=True, arguments=command_queue_arguments()
        )
        assert queue.declaration_result.message_count == 1
        for changed in (
            {"x-delivery-limit": QUEUE_DELIVERY_LIMIT + 1},
            {"x-dead-letter-strategy": "at-most-once"},
            {"x-dead-letter-exchange": "elsewhere"},
            {"x-queue-type": "classic"},
        ):
            channel = await connection.channel()
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(
                    command_queue(data_plane),
                    durable=True,
                    arguments={**command_queue_arguments(), **changed},
                )
    finally:
        await connection.close()


async def test_publishing_while_the_broker_is_unreachable_raises(
    broker_proxy: TcpProxy, data_plane: str, rabbit_queues: None
) -> None:
    bus = RabbitBus(broker_proxy.url, reconnect_interval=TEST_RECONNECT_INTERVAL)
    try:
        with pytest.raises((ConnectionError, aio_pika.exceptions.AMQPError)):
            await bus.publish_command(command(data_plane))
        await broker_proxy.up()
        await bus.publish_command(command(data_plane))
        await broker_proxy.down()
        with pytest.raises((ConnectionError, aio_pika.exceptions.AMQPError)):
            await bus.publish_command(command(data_plane))
    finally:
        await bus.close()


async def test_a_consumer_carries_on_after_the_connection_comes_back(
    amqp_url: str, broker_proxy: TcpProxy, data_plane: str, rabbit_queues: None
) -> None:
    await broker_proxy.up()
    consuming = RabbitBus(
        broker_proxy.url, retry_delay=TEST_RETRY_DELAY, reconnect_interval=TEST_RECONNECT_INTERVAL
    )
    publishing = RabbitBus(amqp_url)
    received: list[int] = []

    async def record(message: Message) -> None:
        received.append(message.body["n"])

    try:
        await consuming.consume_commands(data_plane, record, concurrency=1)
        await publishing.publish_command(command(data_plane, 1))
        await until(lambda: received == [1], what="the first command")

        await broker_proxy.down()
        await publishing.publish_command(command(data_plane, 2))
        await asyncio.sleep(QUIET)
        assert received == [1]
        await broker_proxy.up()
        await until(lambda: received == [1, 2], what="the command sent during the outage")
    finally:
        await consuming.close()
        await publishing.close()


async def test_a_command_that_is_not_json_is_set_aside_without_blocking_the_queue(
    amqp_url: str, data_plane: str, rabbit_queues: None
) -> None:
    bus = RabbitBus(amqp_url, retry_delay=TEST_RETRY_DELAY)
    handled: list[Message] = []

    async def record(message: Message) -> None:
        handled.append(message)

    try:
        await bus.consume_commands(data_plane, record, concurrency=1)
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(COMMANDS_EXCHANGE)
            await exchange.publish(aio_pika.Message(b"{not json", message_id="junk"), data_plane)
        sent = command(data_plane)
        await bus.publish_command(sent)
        await until(lambda: handled == [sent], what="the command after the junk")
        await asyncio.sleep(QUIET)
        assert handled == [sent]
    finally:
        await bus.close()


# ---- requests and answers --------------------------------------------------------------------


async def test_a_request_gets_the_answer_of_one_responder(bus: Bus, data_plane: str) -> None:
    asked: list[Message] = []

    async def respond(message: Message) -> dict[str, object]:
        asked.append(message)
        return {"lines": [f"line {message.body['n']}"]}

    responding = await bus.serve_requests(data_plane, respond)
    answers = await asyncio.gather(
        *(bus.request(data_plane, {"n": n}, within_s=5) for n in range(3))
    )
    assert answers == [{"lines": [f"line {n}"]} for n in range(3)]
    assert sorted(m.body["n"] for m in asked) == [0, 1, 2]
    await responding.stop()


async def test_a_request_nobody_serves_is_refused_at_once(bus: Bus, data_plane: str) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponder, match="no worker serves"):
        await bus.request(data_plane, {"n": 1}, within_s=5)
    assert time.monotonic() - started < 2

    async def respond(message: Message) -> dict[str, object]:
        return {}

    # Once its last responder stops, nobody serves it again.
    responding = await bus.serve_requests(data_plane, respond)
    assert await bus.request(data_plane, {}, within_s=5) == {}
    await responding.stop()
    with pytest.raises(NoResponder):
        await bus.request(data_plane, {}, within_s=5)


async def test_a_responder_that_fails_or_hangs_does_not_hang_the_asker(
    bus: Bus, data_plane: str
) -> None:
    async def fails(message: Message) -> dict[str, object]:
        if message.body.get("hang"):
            await asyncio.sleep(2)
        raise RuntimeError("the runtime broke; details stay with the worker")

    responding = await bus.serve_requests(data_plane, fails)
    assert await bus.request(data_plane, {}, within_s=5) == {"error": "RuntimeError"}
    started = time.monotonic()
    with pytest.raises(NoResponder, match="no answer"):
        await bus.request(data_plane, {"hang": True}, within_s=0.5)
    assert time.monotonic() - started < 2
    await responding.stop()
