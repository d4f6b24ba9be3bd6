"""Waiting for what other tasks or processes do: the state is in a database, a broker or a
process, with no event of the test's own to wait on, so these poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    within: float = 15.0,
    what: str = "the condition",
    every: float = 0.05,
) -> T:
    """The first result of ``check()`` that is neither None nor False; fails the test after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(every)


async def until(
    condition: Callable[[], bool],
    *,
    within: float = 10.0,
    what: str = "the condition",
    every: float = 0.01,
) -> None:
    """Wait until ``condition()`` (no I/O of its own) holds; fails the test after ``within``
    seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(every)
