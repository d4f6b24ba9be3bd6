"""A publish that returns only once the broker confirmed it (the channel has publisher
confirms on and raises on returns)."""

from __future__ import annotations

import aiormq
from aio_pika.abc import AbstractExchange

from app.messaging.bus import Message
from app.messaging.rabbit.wire import encode


class PublishRefused(Exception):
    """The broker did not confirm a message (nacked, or returned as unroutable)."""


async def publish_confirmed(
    exchange: AbstractExchange, message: Message, *, mandatory: bool
) -> None:
    """Publish persistently; PublishRefused when the broker nacks it or, with ``mandatory``,
    no queue takes it."""
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
