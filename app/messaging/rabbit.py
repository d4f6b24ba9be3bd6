"""The bus on RabbitMQ, through aio-pika.

One robust connection per bus (``connect_robust``: it reconnects on its own and restores the
channels, queues, bindings and consumers declared through it). Publishing goes through one
channel with publisher confirms; every consumer has its own channel and prefetch.

Queue arguments of ``promenade.execute.<data plane>`` (``command_queue_arguments``), as
RabbitMQ 3.10 (this project's broker) accepts them:

- ``x-queue-type=quorum``: replicated, durable; the queue type that counts deliveries.
- ``x-delivery-limit=DELIVERY_LIMIT - 1``: RabbitMQ dead-letters a message once it has been
  *re*delivered more often than the limit (measured on 3.10.8: a limit of 2 gives 3 deliveries,
  the third one is dead-lettered when it fails), while ``DELIVERY_LIMIT`` counts deliveries, the
  way the in-process bus counts them. A handler that raises and a consumer whose channel closes
  with the message unacknowledged both count.
- ``x-dead-letter-exchange=promenade.dead-letter``, with the original routing key (the data
  plane's name), which binds ``promenade.dead.<data plane>``.
- ``x-dead-letter-strategy=at-least-once``: the queue keeps a dead-lettered message until the
  dead-letter queue has confirmed it; the default, at-most-once, can lose it between the two
  queues. RabbitMQ (3.10 and later, feature flag ``stream_queue``) honours it only together with
  ``x-overflow=reject-publish``; without ``x-max-length`` that overflow setting changes nothing
  else.

Queue arguments are fixed when a queue is first declared: a queue that exists with other
arguments makes the declaration fail (PRECONDITION_FAILED) until it is deleted or migrated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)

from app.messaging.bus import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    EVENTS_EXCHANGE,
    REQUESTS_EXCHANGE,
    Handler,
    Message,
    NoResponder,
    Responder,
    command_queue,
    dead_letter_queue,
    request_queue,
)
from app.messaging.retrying import REDELIVERY_DELAY, pause, redelivery_delay

log = logging.getLogger(__name__)

# RabbitMQ's x-delivery-limit counts redeliveries; DELIVERY_LIMIT counts deliveries.
QUEUE_DELIVERY_LIMIT = DELIVERY_LIMIT - 1

# How many events an event subscriber has in flight; they are still handled one at a time.
DEFAULT_EVENT_PREFETCH = 64
# Seconds between reconnection attempts of the robust connection.
RECONNECT_INTERVAL = 1.0
# Upper bound for one publish and its confirm, and for a connection attempt.
PUBLISH_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0
# How long stop() waits for the broker's answer to basic.cancel and channel.close.
BROKER_CALL_TIMEOUT = 5.0


def command_queue_arguments() -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": QUEUE_DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def dead_letter_queue_arguments() -> dict[str, Any]:
    return {"x-queue-type": "quorum"}


class PublishRefused(Exception):
    """The broker did not confirm a message (nacked, or returned as unroutable)."""


def encode(message: Message) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(message.body, separators=(",", ":")).encode(),
        message_id=message.message_id,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def decode(incoming: AbstractIncomingMessage) -> Message:
    """The message of a delivery; ValueError when its body is not a JSON object."""
    body = json.loads(incoming.body)
    if not isinstance(body, dict):
        raise ValueError("the body is not a JSON object")
    return Message(
        message_id=incoming.message_id or "",
        routing_key=incoming.routing_key or "",
        body=body,
    )


def deliveries_of(incoming: AbstractIncomingMessage) -> int:
    """Which delivery this is (1 for the first): quorum queues count earlier failed ones."""
    count = (incoming.headers or {}).get("x-delivery-count", 0)
    return (count if isinstance(count, int) else 0) + 1


class RabbitBus:
    """The bus on RabbitMQ. ``connect()`` opens the connection and declares the exchanges; the
    queues of a data plane are declared when it is first used, by a publisher or a consumer, so
    that a command published before any worker ever ran waits in its queue.

    A publish when the connection is down raises at once (the outbox relay retries); a bus that
    never connected tries to connect on its first publish or consume.
    """

    def __init__(
        self,
        url: str,
        *,
        prefetch: int = DEFAULT_EVENT_PREFETCH,
        retry_delay: float = REDELIVERY_DELAY,
        reconnect_interval: float = RECONNECT_INTERVAL,
        publish_timeout: float = PUBLISH_TIMEOUT,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self._url = url
        self._prefetch = prefetch
        self._retry_delay = retry_delay
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._commands: AbstractExchange | None = None
        self._events: AbstractExchange | None = None
        self._requests: AbstractExchange | None = None
        self._connect_lock = asyncio.Lock()
        self._declare_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._consumers: set[RabbitConsumer] = set()
        # Requests waiting for their answer, by correlation id, and the queue answers come to.
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reply_queue: AbstractQueue | None = None
        self._reply_lock = asyncio.Lock()

    # ---- connection ----------------------------------------------------------------------

    async def connect(self) -> None:
        async with self._connect_lock:
            if self._connection is not None:
                return
            connection = await aio_pika.connect_robust(
                self._url,
                timeout=CONNECT_TIMEOUT,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": "promenade"},
            )
            try:
                publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
                commands = await publisher.declare_exchange(
                    COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
                )
                await publisher.declare_exchange(
                    DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
                )
                events = await publisher.declare_exchange(
                    EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
                )
                requests = await publisher.declare_exchange(
                    REQUESTS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
                )
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            self._publisher = publisher
            self._commands = commands
            self._events = events
            self._requests = requests
            self._declared.clear()

    async def close(self) -> None:
        """Close the connection at once: what is unacknowledged goes back to its queue, and
        handlers still running are cancelled. For a graceful end, stop the consumers first."""
        async with self._connect_lock:
            connection, self._connection = self._connection, None
            self._publisher = self._commands = self._events = self._requests = None
            self._reply_queue = None
            for answer in self._answers.values():
                answer.cancel()
            consumers = list(self._consumers)
            self._consumers.clear()
            if connection is not None:
                await connection.close()
            for consumer in consumers:
                await consumer.abandon()

    async def _connected(self) -> AbstractRobustConnection:
        if self._connection is None:
            await self.connect()
        assert self._connection is not None
        return self._connection

    async def _publisher_channel(self) -> AbstractChannel:
        """The publishing channel, or ConnectionError at once while the connection is down (the
        robust channel would otherwise wait for the reconnection)."""
        await self._connected()
        channel = self._publisher
        if channel is None or channel.is_closed:
            raise ConnectionError("not connected to RabbitMQ (reconnecting)")
        return channel

    async def _declare_data_plane(self, data_plane: str) -> None:
        """The data plane's command queue and dead-letter queue, once per connection."""
        if data_plane in self._declared:
            return
        async with self._declare_lock:
            if data_plane in self._declared:
                return
            channel = await self._publisher_channel()
            # The dead-letter side first: with at-least-once dead-lettering a message stays in
            # the command queue until a bound queue has taken it.
            dead = await channel.declare_queue(
                dead_letter_queue(data_plane),
                durable=True,
                arguments=dead_letter_queue_arguments(),
            )
            await dead.bind(DEAD_LETTER_EXCHANGE, routing_key=data_plane)
            queue = await channel.declare_queue(
                command_queue(data_plane), durable=True, arguments=command_queue_arguments()
            )
            await queue.bind(COMMANDS_EXCHANGE, routing_key=data_plane)
            self._declared.add(data_plane)

    # ---- publishing ----------------------------------------------------------------------

    async def publish_command(self, message: Message) -> None:
        async with asyncio.timeout(self._publish_timeout):
            await self._declare_data_plane(message.routing_key)
            assert self._commands is not None
            try:
                await self._publish(self._commands, message, mandatory=True)
            except PublishRefused:
                # Unroutable: the queue was deleted behind our back. Declare it next time.
                self._declared.discard(message.routing_key)
                raise

    async def publish_event(self, message: Message) -> None:
        async with asyncio.timeout(self._publish_timeout):
            await self._publisher_channel()
            assert self._events is not None
            # Not mandatory: an event nobody subscribes to is dropped, as it should be.
            await self._publish(self._events, message, mandatory=False)

    async def _publish(
        self, exchange: AbstractExchange, message: Message, *, mandatory: bool
    ) -> None:
        await self._publisher_channel()
        try:
            confirmation = await exchange.publish(
                encode(message), routing_key=message.routing_key, mandatory=mandatory
            )
        except aiormq.exceptions.PublishError as exc:
            raise PublishRefused(f"{message.message_id}: unroutable ({exc})") from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise PublishRefused(f"{message.message_id}: nacked by the broker ({exc})") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishRefused(f"{message.message_id}: not confirmed ({confirmation!r})")

    # ---- consuming -----------------------------------------------------------------------

    async def consume_commands(
        self, data_plane: str, handler: Handler, *, concurrency: int
    ) -> RabbitConsumer:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        await self._declare_data_plane(data_plane)
        queue_name = command_queue(data_plane)
        return await self._subscribe(
            lambda channel: channel.declare_queue(
                queue_name, durable=True, arguments=command_queue_arguments()
            ),
            _CommandDispatcher(handler, retry_delay=self._retry_delay, limited=True),
            prefetch=concurrency,
        )

    async def consume_dead_letters(self, data_plane: str, handler: Handler) -> RabbitConsumer:
        await self._declare_data_plane(data_plane)
        queue_name = dead_letter_queue(data_plane)
        return await self._subscribe(
            lambda channel: channel.declare_queue(
                queue_name, durable=True, arguments=dead_letter_queue_arguments()
            ),
            _CommandDispatcher(handler, retry_delay=self._retry_delay, limited=False),
            prefetch=1,
        )

    async def subscribe_events(self, handler: Handler, *, pattern: str = "#") -> RabbitConsumer:
        async def declare(channel: AbstractChannel) -> AbstractQueue:
            # Exclusive and auto-delete: the queue lives as long as this subscriber. aio-pika's
            # robust channel names it (amq_<uuid>) so that it can declare it again after a
            # reconnection; events published while the connection was down are not seen.
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(EVENTS_EXCHANGE, routing_key=pattern)
            return queue

        return await self._subscribe(declare, _EventDispatcher(handler), prefetch=self._prefetch)

    # ---- requests and answers -----------------------------------------------------------

    async def request(
        self, routing_key: str, body: dict[str, Any], *, within_s: float
    ) -> dict[str, Any]:
        correlation_id = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[correlation_id] = answer
        try:
            async with asyncio.timeout(within_s):
                reply_queue = await self._replies()
                await self._publisher_channel()
                assert self._requests is not None
                outgoing = aio_pika.Message(
                    json.dumps(body, separators=(",", ":")).encode(),
                    content_type="application/json",
                    correlation_id=correlation_id,
                    reply_to=reply_queue.name,
                    # Unanswered by then, nobody waits for it any more.
                    expiration=within_s,
                )
                try:
                    await self._requests.publish(outgoing, routing_key=routing_key, mandatory=True)
                except aiormq.exceptions.PublishError:
                    raise NoResponder(f"no worker serves {routing_key!r}") from None
                return await answer
        except TimeoutError:
            raise NoResponder(f"no answer from {routing_key!r} within {within_s:g}s") from None
        finally:
            self._answers.pop(correlation_id, None)

    async def _replies(self) -> AbstractQueue:
        """This bus's exclusive queue for answers, declared on first use."""
        async with self._reply_lock:
            if self._reply_queue is not None:
                return self._reply_queue
            connection = await self._connected()
            channel = await connection.channel(publisher_confirms=False)
            queue = await channel.declare_queue(
                f"promenade.replies.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
            )

            async def on_answer(incoming: AbstractIncomingMessage) -> None:
                answer = self._answers.get(incoming.correlation_id or "")
                if answer is None or answer.done():
                    return  # too late: the asker gave up
                try:
                    body = json.loads(incoming.body)
                except ValueError:
                    body = None
                if isinstance(body, dict):
                    answer.set_result(body)
                else:
                    answer.set_exception(NoResponder("the answer is not a JSON object"))

            await queue.consume(on_answer, no_ack=True)
            self._reply_queue = queue
            return queue

    async def serve_requests(self, routing_key: str, responder: Responder) -> RabbitConsumer:
        async def declare(channel: AbstractChannel) -> AbstractQueue:
            # Shared by the routing key's responders; gone with the last of them, so that a
            # request nobody serves is returned at once as unroutable.
            queue = await channel.declare_queue(
                request_queue(routing_key), durable=False, auto_delete=True
            )
            await queue.bind(REQUESTS_EXCHANGE, routing_key=routing_key)
            return queue

        return await self._subscribe(declare, _RequestDispatcher(responder, self), prefetch=4)

    async def answer(self, reply_to: str, correlation_id: str, body: dict[str, Any]) -> None:
        channel = await self._publisher_channel()
        await channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps(body, separators=(",", ":")).encode(),
                content_type="application/json",
                correlation_id=correlation_id,
            ),
            routing_key=reply_to,
        )

    async def _subscribe(
        self,
        declare: Callable[[AbstractChannel], Awaitable[AbstractQueue]],
        consumer: _Dispatcher,
        *,
        prefetch: int,
    ) -> RabbitConsumer:
        connection = await self._connected()
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            queue: AbstractQueue = await declare(channel)
            tag = await queue.consume(consumer.on_message)
        except BaseException:
            await channel.close()
            raise
        subscription = RabbitConsumer(self, channel, queue, tag, consumer)
        self._consumers.add(subscription)
        return subscription

    def _forget(self, subscription: RabbitConsumer) -> None:
        self._consumers.discard(subscription)


class _Dispatcher:
    """Runs a handler per delivery and knows which handlers are running, so that a stop can
    wait for them."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._running: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def on_message(self, incoming: AbstractIncomingMessage) -> None:
        if self.stopping.is_set():
            # Delivered between basic.cancel and its answer: not started, so not ours to run.
            await _give_back(incoming)
            return
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        self._idle.clear()
        try:
            await self.handle(incoming)
        except aiormq.exceptions.ChannelInvalidStateError:
            # The channel closed while the handler ran (connection lost): the broker has put
            # the message back already, and it will come again.
            log.warning("Channel closed before %s could be acknowledged", incoming.message_id)
        except Exception:
            log.exception("Failed to settle message %s", incoming.message_id)
        finally:
            self._running.discard(task)
            if not self._running:
                self._idle.set()

    async def handle(self, incoming: AbstractIncomingMessage) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        await self._idle.wait()

    async def abandon(self) -> None:
        self.stopping.set()
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


class _CommandDispatcher(_Dispatcher):
    """Acknowledges after the handler returned; when it raised, waits a little (less when
    stopping) and rejects with requeue, which counts toward the queue's delivery limit."""

    def __init__(self, handler: Handler, *, retry_delay: float, limited: bool) -> None:
        super().__init__()
        self._handler = handler
        self._retry_delay = retry_delay
        # Whether the queue dead-letters at DELIVERY_LIMIT (the command queue; not the
        # dead-letter queue, whose messages are retried until they are handled).
        self._limited = limited

    async def handle(self, incoming: AbstractIncomingMessage) -> None:
        try:
            message = decode(incoming)
        except ValueError:
            # It can never succeed: dead-letter it now rather than after every delivery.
            log.error("Rejecting message %s: its body is not a JSON object", incoming.message_id)
            await incoming.reject(requeue=False)
            return
        deliveries = deliveries_of(incoming)
        try:
            # Acknowledged when the block ends normally, rejected with requeue when it raises.
            async with incoming.process(requeue=True):
                try:
                    await self._handler(message)
                except Exception as exc:
                    log.exception(
                        "Handler failed on message %s (delivery %d)",
                        message.message_id,
                        deliveries,
                    )
                    if not (self._limited and deliveries >= DELIVERY_LIMIT):
                        delay = redelivery_delay(self._retry_delay, deliveries)
                        await pause(delay, unless=self.stopping)
                    raise _HandlerFailed from exc
        except _HandlerFailed:
            pass  # logged above, and requeued by process()


class _HandlerFailed(Exception):
    pass


class _EventDispatcher(_Dispatcher):
    """Handles events one at a time, in delivery order: deliveries are queued here as they
    arrive and a single task works through them. A handler that raises is logged and the
    event acknowledged: an event is a notification, and redelivering it would stop the ones
    behind it."""

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self._handler = handler
        self._turn = asyncio.Lock()  # FIFO: waiters acquire in the order they arrived

    async def handle(self, incoming: AbstractIncomingMessage) -> None:
        async with self._turn:
            if self.stopping.is_set():
                await _give_back(incoming)
                return
            try:
                message = decode(incoming)
            except ValueError:
                log.error("Dropping event %s: its body is not a JSON object", incoming.message_id)
                await incoming.ack()
                return
            try:
                await self._handler(message)
            except Exception:
                log.exception("Event handler failed on %s", message.message_id)
            await incoming.ack()


class _RequestDispatcher(_Dispatcher):
    """Answers each request and acknowledges it; a request is never retried (its asker waits
    only so long)."""

    def __init__(self, responder: Responder, bus: RabbitBus) -> None:
        super().__init__()
        self._responder = responder
        self._bus = bus

    async def handle(self, incoming: AbstractIncomingMessage) -> None:
        try:
            message = decode(incoming)
        except ValueError:
            log.error("Dropping request %s: its body is not a JSON object", incoming.message_id)
            await incoming.ack()
            return
        try:
            answer = await self._responder(message)
        except Exception as exc:
            log.exception("Answering a request failed")
            answer = {"error": type(exc).__name__}
        if incoming.reply_to and incoming.correlation_id:
            try:
                await self._bus.answer(incoming.reply_to, incoming.correlation_id, answer)
            except Exception:
                log.warning("Could not answer request %s", incoming.correlation_id, exc_info=True)
        await incoming.ack()


async def _give_back(incoming: AbstractIncomingMessage) -> None:
    # A closed channel has given the delivery back already.
    with contextlib.suppress(aiormq.exceptions.ChannelInvalidStateError):
        await incoming.nack(requeue=True)


class RabbitConsumer:
    """A consumer on its own channel. ``stop()`` cancels it at the broker (no new deliveries),
    waits for the handlers running now, then closes the channel."""

    def __init__(
        self,
        bus: RabbitBus,
        channel: AbstractChannel,
        queue: AbstractQueue,
        tag: ConsumerTag,
        consumer: _Dispatcher,
    ) -> None:
        self._bus = bus
        self._channel = channel
        self._queue = queue
        self._tag = tag
        self._consumer = consumer
        self._stopped: asyncio.Future[None] | None = None

    async def stop(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self._consumer.stopping.set()
        try:
            # With the connection down this would wait for it to come back; the broker has
            # dropped the consumer with the connection anyway.
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._queue.cancel(self._tag)
        except Exception as exc:
            log.warning("Could not cancel consumer %s: %r", self._tag, exc)
        await self._consumer.drain()
        self._bus._forget(self)
        try:
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._channel.close()
        except Exception as exc:
            log.warning("Could not close the channel of consumer %s: %r", self._tag, exc)

    async def abandon(self) -> None:
        await self._consumer.abandon()
