"""The bus of embedded mode: the same interface as ``RabbitBus``, in memory, with asyncio.

- Commands wait in one queue per data plane until a consumer takes them; up to
  ``concurrency`` handlers per consumer run at once. A handler that raises puts its message
  back at the *end* of the queue (RabbitMQ puts it near the head; nothing here relies on the
  order of retries), after the same growing pause as ``RabbitBus``. The delivery that fails for
  the ``DELIVERY_LIMIT``-th time moves the message to the data plane's dead-letter queue, as the
  quorum queue's delivery limit does on RabbitMQ.
- Events fan out to every subscriber's own queue, in publish order, and each subscriber
  handles them one at a time; one whose pattern does not match never sees them.
- A published message is in a queue before ``publish_*`` returns and stays there until a
  handler returned for it; ``close()`` puts the messages of handlers it interrupts back at the
  head of their queue (like unacknowledged messages of a closed connection), and queues survive
  a ``close()``/``connect()``. They do not survive the process: in embedded mode the database
  is the durable record, and unfinished work is found there again on start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.messaging.bus import (
    DELIVERY_LIMIT,
    Handler,
    Message,
    NoResponder,
    QueueDepth,
    Responder,
)
from app.messaging.retrying import REDELIVERY_DELAY, pause, redelivery_delay

log = logging.getLogger(__name__)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching: words separated by dots, ``*`` is one word, ``#`` zero or more."""
    return _match(pattern.split("."), routing_key.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


@dataclass
class _Envelope:
    message: Message
    # Failed deliveries so far (RabbitMQ's x-delivery-count).
    failures: int = 0


class _Mailbox:
    """A FIFO that consumers wait on. Taking is the only await: a task cancelled while it
    waits has taken nothing."""

    def __init__(self) -> None:
        self._items: deque[_Envelope] = deque()
        self._nonempty = asyncio.Event()

    def put(self, envelope: _Envelope) -> None:
        self._items.append(envelope)
        self._nonempty.set()

    def put_front(self, envelope: _Envelope) -> None:
        self._items.appendleft(envelope)
        self._nonempty.set()

    def __len__(self) -> int:
        return len(self._items)

    async def take(self) -> _Envelope:
        while not self._items:
            self._nonempty.clear()
            await self._nonempty.wait()
        return self._items.popleft()


# What a consumer does with one message it took: returns normally when it is settled.
_Deliver = Callable[[_Envelope], Awaitable[None]]


class InProcessConsumer:
    """``workers`` tasks taking from one mailbox. ``stop()`` lets no task take another message,
    waits for the messages being handled, then returns."""

    def __init__(
        self, mailbox: _Mailbox, deliver: _Deliver, *, workers: int, on_stop: Callable[[], None]
    ) -> None:
        self.mailbox = mailbox
        self._deliver = deliver
        self._on_stop = on_stop
        self.stopping = asyncio.Event()
        self._waiting: set[asyncio.Task[None]] = set()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(workers)]
        self._stopped: asyncio.Future[None] | None = None

    async def _work(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self.stopping.is_set():
            self._waiting.add(task)
            try:
                envelope = await self.mailbox.take()
            finally:
                self._waiting.discard(task)
            await self._deliver(envelope)

    async def stop(self) -> None:
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopped)

    async def _stop(self) -> None:
        self.stopping.set()
        self._on_stop()
        # Idle tasks wait in take() and have taken nothing; busy ones finish their message
        # and then see `stopping`.
        for task in list(self._waiting):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def abandon(self) -> None:
        """Stop now: handlers running are cancelled and their messages put back."""
        self.stopping.set()
        self._on_stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _Responding:
    """A responder's registration; ``stop()`` withdraws it."""

    def __init__(self, responders: list[Responder], responder: Responder) -> None:
        self._responders = responders
        self._responder = responder

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self._responders.remove(self._responder)


class InProcessBus:
    """The bus of one process (embedded mode); see the module's docstring."""

    def __init__(self, *, retry_delay: float = REDELIVERY_DELAY) -> None:
        self._retry_delay = retry_delay
        self._commands: dict[str, _Mailbox] = {}
        self._dead: dict[str, _Mailbox] = {}
        self._subscribers: dict[InProcessConsumer, tuple[str, _Mailbox]] = {}
        self._consumers: set[InProcessConsumer] = set()
        self._responders: dict[str, list[Responder]] = {}
        self._closed = False

    async def connect(self) -> None:
        self._closed = False

    async def close(self) -> None:
        """Stop every consumer now; what their handlers were doing goes back to its queue.
        Publishing raises until ``connect()``."""
        self._closed = True
        consumers = list(self._consumers)
        self._consumers.clear()
        await asyncio.gather(*(consumer.abandon() for consumer in consumers))

    def _mailbox(self, data_plane: str) -> _Mailbox:
        if data_plane not in self._commands:
            self._commands[data_plane] = _Mailbox()
            self._dead[data_plane] = _Mailbox()
        return self._commands[data_plane]

    async def ping(self) -> None:
        self._check_open()

    async def queue_depth(self, data_plane: str) -> QueueDepth:
        """Messages in the data plane's queue (not those being handled, nor those waiting
        out a pause before they go back), and its consumers, as RabbitMQ counts them."""
        self._check_open()
        mailbox = self._mailbox(data_plane)
        consumers = sum(1 for consumer in self._consumers if consumer.mailbox is mailbox)
        return QueueDepth(ready=len(mailbox), consumers=consumers)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionError("the in-process bus is closed")

    async def publish_command(self, message: Message) -> None:
        self._check_open()
        self._mailbox(message.routing_key).put(_Envelope(message))

    async def publish_event(self, message: Message) -> None:
        self._check_open()
        for pattern, mailbox in self._subscribers.values():
            if topic_matches(pattern, message.routing_key):
                mailbox.put(_Envelope(message))

    async def consume_commands(
        self, data_plane: str, handler: Handler, *, concurrency: int
    ) -> InProcessConsumer:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._check_open()
        mailbox = self._mailbox(data_plane)
        dead = self._dead[data_plane]

        async def deliver(envelope: _Envelope) -> None:
            await self._deliver(envelope, handler, consumer, back_to=mailbox, dead=dead)

        consumer = self._start(mailbox, deliver, workers=concurrency)
        return consumer

    async def consume_dead_letters(self, data_plane: str, handler: Handler) -> InProcessConsumer:
        self._check_open()
        self._mailbox(data_plane)
        dead = self._dead[data_plane]

        async def deliver(envelope: _Envelope) -> None:
            # No limit here, as on RabbitMQ: a dead letter is retried until it is handled.
            await self._deliver(envelope, handler, consumer, back_to=dead, dead=None)

        consumer = self._start(dead, deliver, workers=1)
        return consumer

    async def subscribe_events(self, handler: Handler, *, pattern: str = "#") -> InProcessConsumer:
        self._check_open()
        mailbox = _Mailbox()

        async def deliver(envelope: _Envelope) -> None:
            try:
                await handler(envelope.message)
            except Exception:
                # As on RabbitMQ: logged and dropped, so that it does not hold up the others.
                log.exception("Event handler failed on %s", envelope.message.message_id)

        consumer = self._start(mailbox, deliver, workers=1)
        self._subscribers[consumer] = (pattern, mailbox)
        return consumer

    async def request(
        self, routing_key: str, body: dict[str, Any], *, within_s: float
    ) -> dict[str, Any]:
        """The first responder of the key answers, called directly."""
        self._check_open()
        responders = self._responders.get(routing_key)
        if not responders:
            raise NoResponder(f"no worker serves {routing_key!r}")
        message = Message(message_id=uuid.uuid4().hex, routing_key=routing_key, body=body)
        try:
            async with asyncio.timeout(within_s):
                return await responders[0](message)
        except TimeoutError:
            raise NoResponder(f"no answer from {routing_key!r} within {within_s:g}s") from None
        except Exception as exc:
            # As on RabbitMQ: the asker learns that it failed, the log says how.
            log.exception("Answering a request failed")
            return {"error": type(exc).__name__}

    async def serve_requests(self, routing_key: str, responder: Responder) -> _Responding:
        self._check_open()
        self._responders.setdefault(routing_key, []).append(responder)
        return _Responding(self._responders[routing_key], responder)

    def _start(self, mailbox: _Mailbox, deliver: _Deliver, *, workers: int) -> InProcessConsumer:
        consumer: InProcessConsumer

        def forget() -> None:
            self._consumers.discard(consumer)
            self._subscribers.pop(consumer, None)

        consumer = InProcessConsumer(mailbox, deliver, workers=workers, on_stop=forget)
        self._consumers.add(consumer)
        return consumer

    async def _deliver(
        self,
        envelope: _Envelope,
        handler: Handler,
        consumer: InProcessConsumer,
        *,
        back_to: _Mailbox,
        dead: _Mailbox | None,
    ) -> None:
        try:
            await handler(envelope.message)
        except asyncio.CancelledError:
            # Interrupted by close(): like an unacknowledged message of a closed connection,
            # back to the head of its queue, and it counts as a failed delivery.
            self._requeue(envelope, back_to, dead, front=True)
            raise
        except Exception:
            log.exception(
                "Handler failed on message %s (delivery %d)",
                envelope.message.message_id,
                envelope.failures + 1,
            )
        else:
            return
        try:
            last = dead is not None and envelope.failures + 1 >= DELIVERY_LIMIT
            if not consumer.stopping.is_set() and not last:
                delay = redelivery_delay(self._retry_delay, envelope.failures + 1)
                await pause(delay, unless=consumer.stopping)
        except asyncio.CancelledError:
            self._requeue(envelope, back_to, dead, front=True)
            raise
        self._requeue(envelope, back_to, dead, front=False)

    @staticmethod
    def _requeue(
        envelope: _Envelope, back_to: _Mailbox, dead: _Mailbox | None, *, front: bool
    ) -> None:
        envelope.failures += 1
        if dead is not None and envelope.failures >= DELIVERY_LIMIT:
            log.error(
                "Message %s failed %d deliveries: dead-lettered",
                envelope.message.message_id,
                envelope.failures,
            )
            dead.put(_Envelope(envelope.message))
        elif front:
            back_to.put_front(envelope)
        else:
            back_to.put(envelope)
