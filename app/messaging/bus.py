"""The bus interface. Two implementations pass the same tests: ``RabbitBus`` (aio-pika) for the
scaled setup and ``InProcessBus`` for embedded mode.

Topology on RabbitMQ:
- ``promenade.commands``: direct exchange; routing key = data plane name; one quorum queue per
  data plane, ``promenade.execute.<data plane>``, with a delivery limit and dead-lettering to
  ``promenade.dead-letter`` (direct, same routing key) -> ``promenade.dead.<data plane>``.
- ``promenade.events``: topic exchange; routing keys ``promotion.<id>`` and
  ``deployment.<id>``; every subscriber (each API replica) binds its own exclusive queue.
- ``promenade.requests``: direct exchange for questions that need an answer now (an
  instance's logs); routing key = data plane; the data plane's workers share the auto-deleted
  queue ``promenade.requests.<data plane>`` (messages expire with the asker's timeout), and
  answer to the asker's exclusive reply queue.

A data plane's routing key is its id (``local`` for the installation's own local data plane),
never its name: two organizations may name data planes alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

COMMANDS_EXCHANGE = "promenade.commands"
EVENTS_EXCHANGE = "promenade.events"
DEAD_LETTER_EXCHANGE = "promenade.dead-letter"
REQUESTS_EXCHANGE = "promenade.requests"
# How often a command may be delivered before it is dead-lettered.
DELIVERY_LIMIT = 5


def command_queue(data_plane: str) -> str:
    return f"promenade.execute.{data_plane}"


def dead_letter_queue(data_plane: str) -> str:
    return f"promenade.dead.{data_plane}"


def request_queue(data_plane: str) -> str:
    return f"promenade.requests.{data_plane}"


class NoResponder(Exception):
    """Nobody answered a request: no worker serves its routing key, or none answered in time."""


@dataclass(frozen=True)
class Message:
    # Stable across redeliveries and duplicate publishes: consumers deduplicate on it.
    message_id: str
    routing_key: str
    body: dict[str, Any]


@dataclass(frozen=True)
class QueueDepth:
    """A command queue as its broker sees it."""

    ready: int  # messages waiting for a consumer
    consumers: int


# A handler that returns normally has done its work: the message is acknowledged. One that
# raises has not: the message is returned to the queue and counts toward the delivery limit.
Handler = Callable[[Message], Awaitable[None]]
# Answers a request; what it returns goes back to the asker. One that raises answers
# {"error": "<the exception's type>"}: the asker learns that it failed, not the details.
Responder = Callable[[Message], Awaitable[dict[str, Any]]]


class Consumer(Protocol):
    async def stop(self) -> None:
        """Stop taking new messages, wait for the handlers running now, then return."""
        ...


class Bus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Return once the broker answered a request now; raise when it does not (readiness)."""
        ...

    async def queue_depth(self, data_plane: str) -> QueueDepth:
        """The data plane's command queue now: its messages ready for delivery (not those
        being handled) and its consumers (metrics)."""
        ...

    async def publish_command(self, message: Message) -> None:
        """Persistent; returns only once the broker confirmed it."""
        ...

    async def publish_event(self, message: Message) -> None:
        """Persistent; returns only once the broker confirmed it."""
        ...

    async def consume_commands(
        self, data_plane: str, handler: Handler, *, concurrency: int
    ) -> Consumer:
        """Run ``handler`` for the data plane's commands, at most ``concurrency`` at once."""
        ...

    async def consume_dead_letters(self, data_plane: str, handler: Handler) -> Consumer:
        """Commands of the data plane that exhausted their deliveries."""
        ...

    async def subscribe_events(self, handler: Handler, *, pattern: str = "#") -> Consumer:
        """Every event published from now on whose routing key matches, in publish order."""
        ...

    async def request(
        self, routing_key: str, body: dict[str, Any], *, within_s: float
    ) -> dict[str, Any]:
        """Ask one of the routing key's responders and wait for the answer; NoResponder when
        none serves it or none answers within ``within_s`` seconds."""
        ...

    async def serve_requests(self, routing_key: str, responder: Responder) -> Consumer:
        """Answer the routing key's requests (with the other responders of the key)."""
        ...
