"""The bus interface. Two implementations pass the same tests: ``RabbitBus`` (aio-pika) for the
scaled setup and ``InProcessBus`` for embedded mode.

Topology on RabbitMQ:
- ``promenade.commands``: direct exchange; routing key = data plane name; one quorum queue per
  data plane, ``promenade.execute.<data plane>``, with a delivery limit and dead-lettering to
  ``promenade.dead-letter`` (direct, same routing key) -> ``promenade.dead.<data plane>``.
- ``promenade.events``: topic exchange; routing keys ``promotion.<id>`` and
  ``deployment.<id>``; every subscriber (each API replica) binds its own exclusive queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

COMMANDS_EXCHANGE = "promenade.commands"
EVENTS_EXCHANGE = "promenade.events"
DEAD_LETTER_EXCHANGE = "promenade.dead-letter"
# How often a command may be delivered before it is dead-lettered.
DELIVERY_LIMIT = 5


def command_queue(data_plane: str) -> str:
    return f"promenade.execute.{data_plane}"


def dead_letter_queue(data_plane: str) -> str:
    return f"promenade.dead.{data_plane}"


@dataclass(frozen=True)
class Message:
    # Stable across redeliveries and duplicate publishes: consumers deduplicate on it.
    message_id: str
    routing_key: str
    body: dict[str, Any]


# A handler that returns normally has done its work: the message is acknowledged. One that
# raises has not: the message is returned to the queue and counts toward the delivery limit.
Handler = Callable[[Message], Awaitable[None]]


class Consumer(Protocol):
    async def stop(self) -> None:
        """Stop taking new messages, wait for the handlers running now, then return."""
        ...


class Bus(Protocol):
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

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
