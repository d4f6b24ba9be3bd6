"""``RabbitBus``: the bus on one robust connection (``connect_robust``: it reconnects on its own
and restores the channels, queues, bindings and consumers declared through it). Publishing goes
through one channel with publisher confirms; every consumer has its own channel and prefetch."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from app.messaging.bus import (
    EVENTS_EXCHANGE,
    Handler,
    Message,
    NoResponder,
    QueueDepth,
    Responder,
    command_queue,
)
from app.messaging.rabbit.consuming import (
    CommandDispatcher,
    Dispatcher,
    EventDispatcher,
    RabbitConsumer,
    RequestDispatcher,
)
from app.messaging.rabbit.publishing import PublishRefused, publish_confirmed
from app.messaging.rabbit.requests import Replies
from app.messaging.rabbit.topology import (
    Exchanges,
    declare_command_queue,
    declare_data_plane,
    declare_dead_letter_queue,
    declare_event_queue,
    declare_exchanges,
    declare_request_queue,
)
from app.messaging.rabbit.wire import json_message
from app.messaging.retrying import REDELIVERY_DELAY

# How many events an event subscriber has in flight; they are still handled one at a time.
DEFAULT_EVENT_PREFETCH = 64
# Seconds between reconnection attempts of the robust connection.
RECONNECT_INTERVAL = 1.0
# Upper bound for one publish and its confirm, and for a connection attempt.
PUBLISH_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0


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
        self._exchanges: Exchanges | None = None
        self._connect_lock = asyncio.Lock()
        self._declare_lock = asyncio.Lock()
        self._declared: set[str] = set()
        self._consumers: set[RabbitConsumer] = set()
        self._replies = Replies()

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
                exchanges = await declare_exchanges(publisher)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
            self._publisher = publisher
            self._exchanges = exchanges
            self._declared.clear()

    async def close(self) -> None:
        """Close the connection at once: what is unacknowledged goes back to its queue, and
        handlers still running are cancelled. For a graceful end, stop the consumers first."""
        async with self._connect_lock:
            connection, self._connection = self._connection, None
            self._publisher = None
            self._exchanges = None
            self._replies.forget()
            consumers = list(self._consumers)
            self._consumers.clear()
            if connection is not None:
                await connection.close()
            for consumer in consumers:
                await consumer.abandon()

    async def ping(self) -> None:
        """A passive declaration of the events exchange: one round trip on the publishing
        channel, which also fails while the robust connection is reconnecting."""
        async with asyncio.timeout(self._publish_timeout):
            channel, _ = await self._publisher_channel()
            underlying = await channel.get_underlay_channel()
            await underlying.exchange_declare(exchange=EVENTS_EXCHANGE, passive=True)

    async def queue_depth(self, data_plane: str) -> QueueDepth:
        """A passive declaration of the data plane's command queue on the publishing channel's
        underlying aiormq channel: one round trip, and not recorded by the robust channel for
        restoration. The queue is declared first (once per connection, as a publish does):
        a passive declaration of a queue that does not exist would close the channel."""
        async with asyncio.timeout(self._publish_timeout):
            await self._declare_data_plane(data_plane)
            channel, _ = await self._publisher_channel()
            underlying = await channel.get_underlay_channel()
            declared = await underlying.queue_declare(command_queue(data_plane), passive=True)
        assert declared is not None  # not nowait: the broker answered
        return QueueDepth(ready=declared.message_count or 0, consumers=declared.consumer_count or 0)

    async def _connected(self) -> AbstractRobustConnection:
        if self._connection is None:
            await self.connect()
        assert self._connection is not None
        return self._connection

    async def _publisher_channel(self) -> tuple[AbstractChannel, Exchanges]:
        """The publishing channel and the exchanges, or ConnectionError at once while the
        connection is down (the robust channel would otherwise wait for the reconnection)."""
        await self._connected()
        channel, exchanges = self._publisher, self._exchanges
        if channel is None or exchanges is None or channel.is_closed:
            raise ConnectionError("not connected to RabbitMQ (reconnecting)")
        return channel, exchanges

    async def _declare_data_plane(self, data_plane: str) -> None:
        """The data plane's command queue and dead-letter queue, once per connection."""
        if data_plane in self._declared:
            return
        async with self._declare_lock:
            if data_plane in self._declared:
                return
            channel, _ = await self._publisher_channel()
            await declare_data_plane(channel, data_plane)
            self._declared.add(data_plane)

    # ---- publishing ----------------------------------------------------------------------
    # Publishes started together (the outbox relay's batch) reach the channel's FIFO lock in
    # the order they started: nothing before it waits once the connection is up and the data
    # plane's queues are declared, and the publishes of one data plane wait for its declaration
    # in order (the declare lock is FIFO too). Only the confirms are awaited concurrently.

    async def publish_command(self, message: Message) -> None:
        async with asyncio.timeout(self._publish_timeout):
            await self._declare_data_plane(message.routing_key)
            _, exchanges = await self._publisher_channel()
            try:
                await publish_confirmed(exchanges.commands, message, mandatory=True)
            except PublishRefused:
                # Unroutable: the queue was deleted behind our back. Declare it next time.
                self._declared.discard(message.routing_key)
                raise

    async def publish_event(self, message: Message) -> None:
        async with asyncio.timeout(self._publish_timeout):
            _, exchanges = await self._publisher_channel()
            # Not mandatory: an event nobody subscribes to is dropped, as it should be.
            await publish_confirmed(exchanges.events, message, mandatory=False)

    # ---- consuming -----------------------------------------------------------------------

    async def consume_commands(
        self, data_plane: str, handler: Handler, *, concurrency: int
    ) -> RabbitConsumer:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        await self._declare_data_plane(data_plane)
        return await self._subscribe(
            lambda channel: declare_command_queue(channel, data_plane),
            CommandDispatcher(handler, retry_delay=self._retry_delay, limited=True),
            prefetch=concurrency,
        )

    async def consume_dead_letters(self, data_plane: str, handler: Handler) -> RabbitConsumer:
        await self._declare_data_plane(data_plane)
        return await self._subscribe(
            lambda channel: declare_dead_letter_queue(channel, data_plane),
            CommandDispatcher(handler, retry_delay=self._retry_delay, limited=False),
            prefetch=1,
        )

    async def subscribe_events(self, handler: Handler, *, pattern: str = "#") -> RabbitConsumer:
        return await self._subscribe(
            lambda channel: declare_event_queue(channel, pattern),
            EventDispatcher(handler),
            prefetch=self._prefetch,
        )

    async def _subscribe(
        self,
        declare: Callable[[AbstractChannel], Awaitable[AbstractQueue]],
        dispatcher: Dispatcher,
        *,
        prefetch: int,
    ) -> RabbitConsumer:
        connection = await self._connected()
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=prefetch)
            queue: AbstractQueue = await declare(channel)
            tag = await queue.consume(dispatcher.on_message)
        except BaseException:
            await channel.close()
            raise
        consumer = RabbitConsumer(channel, queue, tag, dispatcher, on_stop=self._consumers.discard)
        self._consumers.add(consumer)
        return consumer

    # ---- requests and answers -----------------------------------------------------------

    async def request(
        self, routing_key: str, body: dict[str, Any], *, within_s: float
    ) -> dict[str, Any]:
        with self._replies.expecting() as (correlation_id, answer):
            try:
                async with asyncio.timeout(within_s):
                    reply_queue = await self._replies.queue(await self._connected())
                    _, exchanges = await self._publisher_channel()
                    outgoing = json_message(
                        body,
                        correlation_id=correlation_id,
                        reply_to=reply_queue.name,
                        # Unanswered by then, nobody waits for it any more.
                        expiration=within_s,
                    )
                    try:
                        await exchanges.requests.publish(
                            outgoing, routing_key=routing_key, mandatory=True
                        )
                    except aiormq.exceptions.PublishError:
                        raise NoResponder(f"no worker serves {routing_key!r}") from None
                    return await answer
            except TimeoutError:
                raise NoResponder(f"no answer from {routing_key!r} within {within_s:g}s") from None

    async def serve_requests(self, routing_key: str, responder: Responder) -> RabbitConsumer:
        return await self._subscribe(
            lambda channel: declare_request_queue(channel, routing_key),
            RequestDispatcher(responder, self.answer),
            prefetch=4,
        )

    async def answer(self, reply_to: str, correlation_id: str, body: dict[str, Any]) -> None:
        channel, _ = await self._publisher_channel()
        await channel.default_exchange.publish(
            json_message(body, correlation_id=correlation_id), routing_key=reply_to
        )
