"""Writing to the outbox: a message joins the caller's transaction and is published by the
relay (``app.messaging.outbox``) only after that transaction commits.

The row is not flushed on its own: it is inserted with the transaction's other new rows when the
session next flushes (before a query, at the latest at the commit), so that a step's events and
their messages cost one round trip per table rather than one each. Its id (a ULID, the order the
relay publishes in) is given when it is made, not when it is inserted."""

from __future__ import annotations

from typing import Any, Literal

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import OutboxMessage


async def enqueue(
    session: AsyncSession,
    *,
    exchange: Literal["command", "event"],
    routing_key: str,
    body: dict[str, Any],
) -> OutboxMessage:
    message = OutboxMessage(exchange=exchange, routing_key=routing_key, body=body)
    session.add(message)
    return message
