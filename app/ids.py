"""Opaque, sortable identifiers: ``<kind>_<26 chars>``.

The prefix names the kind of object, so ``node(id:)`` can find the table without a lookup,
and the rest sorts by creation time (a ULID), so keyset pagination by id lists oldest first.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
_lock = threading.Lock()
_last_ms = 0
_last_random = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id; ids made by one process increase strictly, even within a millisecond."""
    global _last_ms, _last_random
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            now = _last_ms
            _last_random += 1
        else:
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms = now
        return f"{prefix}_{_encode(now, 10)}{_encode(_last_random, 16)}"


def prefix_of(identifier: str) -> str:
    return identifier.split("_", 1)[0]
