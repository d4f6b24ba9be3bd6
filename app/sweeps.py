"""Periodic work of the API process: promotion requests that nobody decided on in time expire
(``ExpirySweep``), scheduled promotions whose time came start (``ScheduleSweep``), and releases
move on to their next member (``ReleaseSweep``).

The expiry time is stored with each request, so the sweep needs no memory of its own: after a
restart its first round catches up with everything that expired meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.crypto import SecretBox
from app.db import SessionFactory, session_scope
from app.services.approvals import expire_due
from app.services.promotions import due_scheduled, start_scheduled
from app.services.releases import advance, waiting_releases

log = logging.getLogger(__name__)


class ExpirySweep:
    what = "expiry sweep"

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        interval_s: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._interval_s = interval_s
        self._on_change = on_change
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def sweep(self) -> int:
        async with session_scope(self._sessions) as session:
            expired = await expire_due(session)
        if expired:
            log.info("%d promotion request(s) expired", len(expired))
            self._on_change()
        return len(expired)

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("the %s failed; trying again in %.0f s", self.what, self._interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)


class ScheduleSweep(ExpirySweep):
    """Starts the scheduled promotions that are due (``promotions.start_due``): run often, so
    that one starts within about ``interval_s`` of its time. Several API processes may run
    it at once: each promotion is held before it starts, so it starts once."""

    what = "schedule sweep"

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        box: SecretBox,
        interval_s: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(sessions, interval_s=interval_s, on_change=on_change)
        self._box = box

    async def sweep(self) -> int:
        async with session_scope(self._sessions) as session:
            due = await due_scheduled(session)
        moved = 0
        for promotion_id in due:
            # Each in its own transaction: one that cannot start does not hold back the rest.
            try:
                async with session_scope(self._sessions) as session:
                    started = await start_scheduled(
                        session, box=self._box, promotion_id=promotion_id
                    )
            except Exception:
                log.exception("scheduled promotion %s could not start", promotion_id)
                continue
            if started is not None:
                moved += 1
        if moved:
            log.info("%d scheduled promotion(s) started or failed", moved)
            self._on_change()
        return moved


class ReleaseSweep(ScheduleSweep):
    """Moves releases on (``releases.advance``): a decided request starts or ends its release,
    a member that ended starts the next one or fails the release. Run as often as the schedule
    sweep; several API processes may run it at once: each release is held while it moves."""

    what = "release sweep"

    async def sweep(self) -> int:
        async with session_scope(self._sessions) as session:
            waiting = await waiting_releases(session)
        moved = 0
        for release_id in waiting:
            try:
                async with session_scope(self._sessions) as session:
                    if await advance(session, box=self._box, release_id=release_id):
                        moved += 1
            except Exception:
                log.exception("release %s could not move on", release_id)
        if moved:
            self._on_change()
        return moved
