"""Writing to the outbox: a message joins the caller's transaction and is published by the
relay (``app.messaging.outbox``) only after that transaction commits."""

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
    await session.flush()
    return message
