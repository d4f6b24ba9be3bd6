"""Readiness: whether a process can do its work now, part by part, for ``/readyz``.

``/healthz`` says the process answers; ``/readyz`` says what it depends on answers too: the
database (a query within ``CHECK_TIMEOUT_S``), its schema at the migrations' head (a process
started before ``promenade migrate`` ran, or code newer than the database, is not ready), and in
the scaled setup the broker (a round trip on the publishing channel). A load balancer sends
traffic only to ready replicas; the body names the part that is not ready, never a secret (the
reason is the kind of failure, not the error's text, which can hold a URL with a password).
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse

from app import migrate
from app.messaging.bus import Bus

# Each part must answer within this, so that /readyz answers while a dependency hangs.
CHECK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Part:
    name: str
    ready: bool
    detail: str | None = None


# A check of one part: the part, ready or not; it does not raise.
Check = Callable[[], Awaitable[Part]]


async def _checked(name: str, probe: Callable[[], Awaitable[str | None]]) -> Part:
    """The part, ready when ``probe`` returns (its result: why not, if not None) in time."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            problem = await probe()
    except TimeoutError:
        return Part(name, False, f"does not answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:  # what the failure is, not its text (see the module's docstring)
        return Part(name, False, f"does not answer ({type(exc).__name__})")
    return Part(name, problem is None, problem)


@functools.cache
def _head() -> str | None:
    return migrate.head_revision()


def database_checks(engine: AsyncEngine) -> list[Check]:
    """The database answers, and its schema is the one this code needs."""

    async def answers() -> str | None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    async def migrated() -> str | None:
        current, head = await migrate.current_revision(engine), _head()
        if current == head:
            return None
        return (
            f"the database is at revision {current}, this code needs {head}: run promenade migrate"
        )

    return [
        functools.partial(_checked, "database", answers),
        functools.partial(_checked, "migrations", migrated),
    ]


def broker_check(bus: Bus) -> Check:
    async def answers() -> str | None:
        await bus.ping()
        return None

    return functools.partial(_checked, "broker", answers)


class Readiness:
    """The ``/readyz`` answer: 200 when every part is ready, else 503; the body lists each part
    either way. Unauthenticated, so a flood of callers must not become the outage it reports:
    callers that arrive while the parts are being checked wait for that check, and its answer
    serves for ``FRESH_S`` more (a load balancer asks every few seconds)."""

    FRESH_S = 1.0

    def __init__(self, checks: Sequence[Check]) -> None:
        self._checks = list(checks)
        self._running: asyncio.Task[tuple[int, dict[str, object]]] | None = None
        self._checked_at = -math.inf

    async def response(self) -> JSONResponse:
        now = time.monotonic()
        if self._running is None or (
            self._running.done() and now - self._checked_at > self.FRESH_S
        ):
            self._checked_at = now
            self._running = asyncio.ensure_future(self._check())
        status, body = await asyncio.shield(self._running)
        return JSONResponse(body, status_code=status)

    async def _check(self) -> tuple[int, dict[str, object]]:
        parts = await asyncio.gather(*(check() for check in self._checks))
        ready = all(part.ready for part in parts)
        body: dict[str, object] = {
            "status": "ready" if ready else "not ready",
            "parts": {
                part.name: {"ready": part.ready, **({"detail": part.detail} if part.detail else {})}
                for part in parts
            },
        }
        return (200 if ready else 503), body
