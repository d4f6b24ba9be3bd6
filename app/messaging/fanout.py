"""Event fan-out inside one API process.

The hub holds one subscription to the bus (on RabbitMQ, an exclusive queue of this replica bound
to ``promenade.events``), so every replica hears every event, whichever worker caused it. It
hands each event to the local subscribers whose filter accepts it, without ever waiting for one:
a subscriber's queue is bounded, and a subscriber that falls that far behind is cut off (it is
told so and may subscribe again) instead of holding back the others or growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from app.messaging.bus import Bus, Consumer, Message

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 256
# While the bus does not answer, the hub tries to subscribe again RESUBSCRIBE_FIRST_S after the
# first attempt, and then after pauses that double, up to RESUBSCRIBE_MAX_S.
RESUBSCRIBE_FIRST_S = 1.0
RESUBSCRIBE_MAX_S = 30.0

Filter = Callable[[Message], bool]
T = TypeVar("T")


def _one() -> int:
    return 1


# How many subscriptions a subscriber made in this context serves: one, or, made by an execution
# that many sockets share (app/graphql/broadcasts.py), as many as it serves at the moment.
AUDIENCE: ContextVar[Callable[[], int]] = ContextVar("audience", default=_one)


class SubscriberTooSlow(Exception):
    """The subscriber's queue filled up; events were not kept for it."""


class Mailbox(Generic[T]):
    """A bounded queue that is never waited on by whoever fills it: once it overflows, what
    was not kept is not pretended to have been, and its reader learns it was too slow."""

    def __init__(self, *, queue_size: int) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=queue_size)
        self._overflowed = False

    def offer(self, item: T) -> None:
        if self._overflowed:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True
            # Wake a waiting reader so that it learns of the overflow now.
            self._queue.get_nowait()
            self._queue.put_nowait(item)

    async def next(self, at_most_s: float | None = None) -> T | None:
        """The next item; None when ``at_most_s`` seconds pass without one."""
        if self._overflowed:
            raise SubscriberTooSlow("events arrived faster than they were read; subscribe again")
        if self._queue.empty():
            # asyncio.timeout, not wait_for: no task made per item (a crowd of sockets reads
            # each event through one of these).
            try:
                async with asyncio.timeout(at_most_s):
                    item = await self._queue.get()
            except TimeoutError:
                return None
        else:
            item = self._queue.get_nowait()
        if self._overflowed:
            raise SubscriberTooSlow("events arrived faster than they were read; subscribe again")
        return item


class Subscriber(Mailbox[Message]):
    """The accepted events, for one subscription (or one execution that many share)."""

    def __init__(self, accept: Filter, *, queue_size: int) -> None:
        super().__init__(queue_size=queue_size)
        self.accept = accept
        self.audience = AUDIENCE.get()


class Wakeup:
    """A subscriber that only needs to know that something happened (it reads the state from
    the database): any number of events between two reads count as one."""

    def __init__(self, accept: Filter) -> None:
        self.accept = accept
        self.audience = AUDIENCE.get()
        self._event = asyncio.Event()

    def offer(self, message: Message) -> None:
        self._event.set()

    async def wait(self, at_most_s: float) -> None:
        """Until an accepted event arrives, or ``at_most_s`` seconds (then the caller looks at
        the database anyway: a bus that is down must not leave it waiting forever)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most_s)
        self._event.clear()


class EventHub:
    def __init__(self, bus: Bus | None, *, queue_size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self._bus = bus
        self._queue_size = queue_size
        self._subscribers: set[Subscriber | Wakeup] = set()
        self._consumer: Consumer | None = None
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe to the bus now, or keep trying in the background while it does not
        answer (subscriptions that read the database poll it meanwhile)."""
        if self._bus is None:
            return
        try:
            self._consumer = await self._bus.subscribe_events(self.dispatch, pattern="#")
        except Exception as exc:
            log.warning("no live events yet (%s: %s); retrying", type(exc).__name__, exc)
            self._retry = asyncio.create_task(self._subscribe_when_possible())

    async def _subscribe_when_possible(self) -> None:
        """Subscribe RESUBSCRIBE_FIRST_S after start()'s attempt failed, then, while it fails,
        after a pause twice as long as the last, at most RESUBSCRIBE_MAX_S: 1, 2, 4 ... 30 s."""
        assert self._bus is not None
        bus = self._bus
        await asyncio.sleep(RESUBSCRIBE_FIRST_S)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            # The pauses after this task's attempts, which come second, third ...
            wait=wait_exponential(multiplier=2 * RESUBSCRIBE_FIRST_S, max=RESUBSCRIBE_MAX_S),
            before_sleep=lambda state: log.debug(
                "events still unavailable: %r", state.outcome and state.outcome.exception()
            ),
        )
        self._consumer = await retrying(bus.subscribe_events, self.dispatch, pattern="#")
        log.warning("live events flow again")

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    @property
    def subscriber_count(self) -> int:
        """The subscriptions the hub serves: a subscriber that many sockets share counts once
        for each of them."""
        return sum(subscriber.audience() for subscriber in self._subscribers)

    async def dispatch(self, message: Message) -> None:
        for subscriber in list(self._subscribers):
            try:
                accepted = subscriber.accept(message)
            except Exception:
                log.exception("a subscription filter failed on %s", message.routing_key)
                continue
            if accepted:
                subscriber.offer(message)

    @contextlib.contextmanager
    def subscribe(self, accept: Filter) -> Iterator[Subscriber]:
        subscriber = Subscriber(accept, queue_size=self._queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    @contextlib.contextmanager
    def wakeups(self, accept: Filter) -> Iterator[Wakeup]:
        wakeup = Wakeup(accept)
        self._subscribers.add(wakeup)
        try:
            yield wakeup
        finally:
            self._subscribers.discard(wakeup)
