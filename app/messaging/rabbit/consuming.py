"""Consumers on RabbitMQ, each on its own channel with its own prefetch: a dispatcher per kind
of queue settles each delivery (acknowledge, requeue after a pause, dead-letter, answer), and
``RabbitConsumer.stop()`` cancels at the broker, drains the handlers running, then closes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue, ConsumerTag

from app.messaging.bus import DELIVERY_LIMIT, Handler, Responder
from app.messaging.rabbit.wire import decode, deliveries_of
from app.messaging.retrying import pause, redelivery_delay

log = logging.getLogger(__name__)

# How long stop() waits for the broker's answer to basic.cancel and channel.close.
BROKER_CALL_TIMEOUT = 5.0

# Sends an answer: reply_to, correlation_id, body.
Answer = Callable[[str, str, dict[str, Any]], Awaitable[None]]


class Dispatcher:
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


class CommandDispatcher(Dispatcher):
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


class EventDispatcher(Dispatcher):
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


class RequestDispatcher(Dispatcher):
    """Answers each request and acknowledges it; a request is never retried (its asker waits
    only so long)."""

    def __init__(self, responder: Responder, answer: Answer) -> None:
        super().__init__()
        self._responder = responder
        self._answer = answer

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
                await self._answer(incoming.reply_to, incoming.correlation_id, answer)
            except Exception:
                log.warning("Could not answer request %s", incoming.correlation_id, exc_info=True)
        await incoming.ack()


async def _give_back(incoming: AbstractIncomingMessage) -> None:
    # A closed channel has given the delivery back already.
    with contextlib.suppress(aiormq.exceptions.ChannelInvalidStateError):
        await incoming.nack(requeue=True)


class RabbitConsumer:
    """A consumer on its own channel. ``stop()`` cancels it at the broker (no new deliveries),
    waits for the handlers running now, then closes the channel; ``on_stop`` hears of it once
    the handlers are done."""

    def __init__(
        self,
        channel: AbstractChannel,
        queue: AbstractQueue,
        tag: ConsumerTag,
        dispatcher: Dispatcher,
        *,
        on_stop: Callable[[RabbitConsumer], None],
    ) -> None:
        self._channel = channel
        self._queue = queue
        self._tag = tag
        self._dispatcher = dispatcher
        self._on_stop = on_stop
        self._stopped: asyncio.Future[None] | None = None

    async def stop(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self._dispatcher.stopping.set()
        try:
            # With the connection down this would wait for it to come back; the broker has
            # dropped the consumer with the connection anyway.
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._queue.cancel(self._tag)
        except Exception as exc:
            log.warning("Could not cancel consumer %s: %r", self._tag, exc)
        await self._dispatcher.drain()
        self._on_stop(self)
        try:
            async with asyncio.timeout(BROKER_CALL_TIMEOUT):
                await self._channel.close()
        except Exception as exc:
            log.warning("Could not close the channel of consumer %s: %r", self._tag, exc)

    async def abandon(self) -> None:
        await self._dispatcher.abandon()
