"""What Promenade declares on RabbitMQ: the exchanges, a data plane's command queue and
dead-letter queue, the queues of event subscribers, responders and askers.

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

import uuid
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from app.messaging.bus import (
    COMMANDS_EXCHANGE,
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    EVENTS_EXCHANGE,
    REQUESTS_EXCHANGE,
    command_queue,
    dead_letter_queue,
    request_queue,
)

# RabbitMQ's x-delivery-limit counts redeliveries; DELIVERY_LIMIT counts deliveries.
QUEUE_DELIVERY_LIMIT = DELIVERY_LIMIT - 1


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


@dataclass(frozen=True)
class Exchanges:
    commands: AbstractExchange
    events: AbstractExchange
    requests: AbstractExchange


async def declare_exchanges(channel: AbstractChannel) -> Exchanges:
    commands = await channel.declare_exchange(
        COMMANDS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    events = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    requests = await channel.declare_exchange(
        REQUESTS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    return Exchanges(commands=commands, events=events, requests=requests)


async def declare_data_plane(channel: AbstractChannel, data_plane: str) -> None:
    """The data plane's command queue and dead-letter queue, bound to their exchanges."""
    # The dead-letter side first: with at-least-once dead-lettering a message stays in the
    # command queue until a bound queue has taken it.
    dead = await declare_dead_letter_queue(channel, data_plane)
    await dead.bind(DEAD_LETTER_EXCHANGE, routing_key=data_plane)
    queue = await declare_command_queue(channel, data_plane)
    await queue.bind(COMMANDS_EXCHANGE, routing_key=data_plane)


async def declare_command_queue(channel: AbstractChannel, data_plane: str) -> AbstractQueue:
    return await channel.declare_queue(
        command_queue(data_plane), durable=True, arguments=command_queue_arguments()
    )


async def declare_dead_letter_queue(channel: AbstractChannel, data_plane: str) -> AbstractQueue:
    return await channel.declare_queue(
        dead_letter_queue(data_plane), durable=True, arguments=dead_letter_queue_arguments()
    )


async def declare_event_queue(channel: AbstractChannel, pattern: str) -> AbstractQueue:
    """A subscriber's own queue of the events whose routing key matches ``pattern``."""
    # Exclusive and auto-delete: the queue lives as long as this subscriber. aio-pika's robust
    # channel names it (amq_<uuid>) so that it can declare it again after a reconnection;
    # events published while the connection was down are not seen.
    queue = await channel.declare_queue(exclusive=True, auto_delete=True)
    await queue.bind(EVENTS_EXCHANGE, routing_key=pattern)
    return queue


async def declare_request_queue(channel: AbstractChannel, routing_key: str) -> AbstractQueue:
    # Shared by the routing key's responders; gone with the last of them, so that a request
    # nobody serves is returned at once as unroutable.
    queue = await channel.declare_queue(request_queue(routing_key), durable=False, auto_delete=True)
    await queue.bind(REQUESTS_EXCHANGE, routing_key=routing_key)
    return queue


async def declare_reply_queue(channel: AbstractChannel) -> AbstractQueue:
    """An asker's own queue for answers."""
    return await channel.declare_queue(
        f"promenade.replies.{uuid.uuid4().hex}", exclusive=True, auto_delete=True
    )
