"""How messaging waits before it tries again.

- A command whose handler raised goes back to its queue after ``redelivery_delay``, on both
  buses: with the defaults a command gets 0.5 + 1 + 2 + 4 = 7.5 s for a passing outage (a
  database restart, say) before it is dead-lettered, instead of five failures within
  milliseconds. That is a redelivery, not a loop: the queue brings the message again.
- Calls that are tried again until they work (the outbox relay's publishing, the event hub's
  subscription, a worker's start while the broker does not answer) are tenacity's retries;
  ``pause`` is their sleep where a stop must cut the pause short.
"""

from __future__ import annotations

import asyncio
import contextlib

# A failed delivery is requeued after REDELIVERY_DELAY * 2 ** (failures - 1) seconds, at most
# MAX_REDELIVERY_DELAY.
REDELIVERY_DELAY = 0.5
MAX_REDELIVERY_DELAY = 10.0


def redelivery_delay(base: float, failures: int) -> float:
    """The pause after a message's ``failures``-th failed delivery (1 for the first)."""
    return min(base * 2.0 ** max(failures - 1, 0), MAX_REDELIVERY_DELAY)


async def pause(seconds: float, *, unless: asyncio.Event) -> None:
    """Sleep ``seconds``, or until ``unless`` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await unless.wait()
