"""A ``Message`` as an AMQP message and back: a JSON object, its id the message id."""

from __future__ import annotations

import json
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from app.messaging.bus import Message


def json_message(body: dict[str, Any], **properties: Any) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        **properties,
    )


def encode(message: Message) -> aio_pika.Message:
    return json_message(
        message.body,
        message_id=message.message_id,
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
