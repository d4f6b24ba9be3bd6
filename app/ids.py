"""Opaque, sortable identifiers: ``<kind>_<26 chars>``.

The prefix names the kind of object, so ``node(id:)`` can find the table without a lookup,
and the rest sorts by creation time (a ULID, in lower case), so keyset pagination by id lists
oldest first.
"""

from __future__ import annotations

import threading
import time

from ulid import LaxMonotonicPolicy, ULIDGenerator


class _NonDecreasingClock:
    """Milliseconds since the epoch that never go back (a clock set back by NTP repeats the
    last millisecond instead, and the generator counts up within it)."""

    _last = 0

    def __call__(self) -> int:
        self._last = max(self._last, time.time_ns() // 1_000_000)
        return self._last


# Within one millisecond the random part counts up, so ids made by one process increase.
_generator = ULIDGenerator(clock=_NonDecreasingClock(), policy=LaxMonotonicPolicy())
_generating = threading.Lock()


def new_id(prefix: str) -> str:
    """A new id; ids made by one process increase strictly, even within a millisecond."""
    with _generating:  # the clock and the counter together, for every thread
        ulid = _generator.generate()
    return f"{prefix}_{str(ulid).lower()}"


def prefix_of(identifier: str) -> str:
    return identifier.split("_", 1)[0]
