"""A lock between the workers of one machine: an exclusive ``flock`` on a file, waited for
without blocking the event loop. The kernel releases it when its holder dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception_type, wait_fixed

POLL_S = 0.05


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Non-blocking, tried again until the holder lets go: a blocking flock would stop the
        # event loop, and a thread waiting in one could not be cancelled. No stop: the holder
        # is starting the same instance, and lets go once it has.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(BlockingIOError), wait=wait_fixed(POLL_S)
        ):
            with attempt:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # closing releases the lock
