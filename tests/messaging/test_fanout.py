"""The event hub: its subscription to a bus that does not answer yet."""

from __future__ import annotations

import itertools
import time

import pytest

from app.messaging import fanout
from app.messaging.bus import Handler, Message
from app.messaging.fanout import EventHub
from app.messaging.inprocess import InProcessBus, InProcessConsumer
from tests.support.waiting import until


class UnansweringBus(InProcessBus):
    """The in-process bus, whose first ``failures`` subscriptions fail as an unreachable broker
    makes them fail; it notes when each was attempted."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts: list[float] = []

    async def subscribe_events(self, handler: Handler, *, pattern: str = "#") -> InProcessConsumer:
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise ConnectionError("broker unreachable")
        return await super().subscribe_events(handler, pattern=pattern)


async def test_the_hub_subscribes_once_the_bus_answers_after_pauses_that_double(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fanout, "RESUBSCRIBE_FIRST_S", 0.05)
    monkeypatch.setattr(fanout, "RESUBSCRIBE_MAX_S", 0.15)
    bus = UnansweringBus(failures=4)
    hub = EventHub(bus)
    await hub.start()
    assert len(bus.attempts) == 1, "start() makes the first attempt itself"

    # The fifth attempt subscribed: the bus hands its events to the hub from now on.
    await until(lambda: len(bus.attempts) == 5, what="four more attempts")
    gaps = [later - earlier for earlier, later in itertools.pairwise(bus.attempts)]
    # 0.05, 0.1, then 0.2 capped at 0.15 (a timer may fire a little early, never much).
    for gap, pause in zip(gaps, [0.05, 0.1, 0.15, 0.15], strict=True):
        assert gap >= 0.9 * pause, gaps
    assert gaps[3] < 0.3, f"the pause is capped: {gaps}"

    with hub.subscribe(lambda message: True) as subscriber:
        await bus.publish_event(Message(message_id="e1", routing_key="promotion.p1", body={}))
        received = await subscriber.next(at_most_s=2.0)
    assert received is not None and received.message_id == "e1"
    await hub.stop()
    await bus.close()


async def test_a_hub_stopped_while_it_waits_for_the_bus_stops_at_once() -> None:
    bus = UnansweringBus(failures=1_000)
    hub = EventHub(bus)
    await hub.start()
    started = time.monotonic()
    await hub.stop()
    assert time.monotonic() - started < 0.5
    assert len(bus.attempts) == 1, "no attempt after the stop"
    await bus.close()
