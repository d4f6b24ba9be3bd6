"""What the viewers of open websockets may still do, read for all of them at once.

A websocket lives long, and its token can be revoked or its user removed from an
organization while it is open. Rather than each socket (and each of its subscriptions) asking
the database every few seconds, one watch per API process reads, every ``interval_s``, which
of the watched tokens still authenticate and what their users' roles are: two queries however
many sockets are open. A socket whose token no longer authenticates is told so; subscriptions
read the roles from the last reading."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from sqlmodel import col, select, update

from app.db import SessionFactory
from app.models import ApiToken, Membership, Role, User
from app.models.base import utcnow
from app.services.auth import LAST_USED_RESOLUTION, hash_token

log = logging.getLogger(__name__)

# Readings in a row that may fail (the database not answering) before the sockets close:
# a revocation could not be seen.
MAX_FAILED_READINGS = 3
# The longest a reading may take (at least; the interval when longer) before it counts as
# failed: one that hangs must not hold every socket's check.
MIN_READING_TIMEOUT_S = 10.0
# Values per IN (...) list: well under SQLite's limit on bound parameters.
CHUNK = 500


class Lost(enum.Enum):
    REVOKED = "the token is revoked"
    UNCHECKED = "the token cannot be checked now"


@dataclass(eq=False)
class Watched:
    """One open socket: its token (as stored, hashed) and user, and what to call when the
    token stops authenticating."""

    token_hash: str = field(repr=False)
    user_id: str
    on_lost: Callable[[Lost], None]


@dataclass(frozen=True)
class Reading:
    valid: frozenset[tuple[str, str]]  # (token hash, user id) pairs that authenticate
    roles: dict[str, dict[str, Role]]  # user id -> organization id -> role
    at: float  # time.monotonic()


class AccessWatch:
    def __init__(self, sessions: SessionFactory, *, interval_s: float) -> None:
        self._sessions = sessions
        self.interval_s = interval_s
        self._watched: set[Watched] = set()
        self._reading: Reading | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed = 0

    def watch(self, token: str, user_id: str, on_lost: Callable[[Lost], None]) -> Watched:
        """Watch a socket's token until ``unwatch``."""
        watched = Watched(hash_token(token), user_id, on_lost)
        self._watched.add(watched)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._watch_forever())
        return watched

    def unwatch(self, watched: Watched) -> None:
        self._watched.discard(watched)

    def roles_of(self, user_id: str) -> dict[str, Role] | None:
        """The user's roles as last read, when that reading covered them; None otherwise:
        the caller reads them itself. Readings begin every ``interval_s``, so the one in use
        began at most that long ago plus the time the next one takes; one that failed is
        not used, nor one older than twice the interval (the next one hangs)."""
        reading = self._reading
        if reading is None or time.monotonic() - reading.at > 2 * self.interval_s:
            return None
        return reading.roles.get(user_id)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch_forever(self) -> None:
        """A reading begins every ``interval_s`` while sockets are watched (the next one
        right away when one took longer than that)."""
        began = time.monotonic()
        try:
            while self._watched:
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - began)))
                began = time.monotonic()
                await self.check()
        finally:
            self._reading = None
            self._failed = 0

    async def check(self) -> None:
        """Read the watched tokens and roles once, and tell the sockets that lost access."""
        watched = list(self._watched)
        if not watched:
            return
        try:
            async with asyncio.timeout(max(self.interval_s, MIN_READING_TIMEOUT_S)):
                reading = await self.read(
                    {w.token_hash for w in watched}, {w.user_id for w in watched}
                )
        except Exception:
            self._failed += 1
            self._reading = None
            log.warning("could not read the websockets' access", exc_info=True)
            if self._failed >= MAX_FAILED_READINGS:
                for w in watched:
                    w.on_lost(Lost.UNCHECKED)
            return
        self._failed = 0
        self._reading = reading
        for w in watched:
            if (w.token_hash, w.user_id) not in reading.valid:
                w.on_lost(Lost.REVOKED)

    async def read(self, token_hashes: set[str], user_ids: set[str]) -> Reading:
        """Which tokens authenticate, and the users' roles. A token in use on a socket is
        marked used, as a request would (at most once a LAST_USED_RESOLUTION)."""
        at = time.monotonic()
        now = utcnow()
        valid: set[tuple[str, str]] = set()
        idle: list[str] = []
        roles: dict[str, dict[str, Role]] = {user_id: {} for user_id in user_ids}
        async with self._sessions() as session:
            for hashes in _chunks(token_hashes):
                rows = await session.exec(
                    select(ApiToken.token_hash, ApiToken.user_id, ApiToken.last_used_at)
                    .join(User, col(User.id) == col(ApiToken.user_id))
                    .where(col(ApiToken.token_hash).in_(hashes))
                )
                for token_hash, user_id, last_used_at in rows.all():
                    valid.add((token_hash, user_id))
                    if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
                        idle.append(token_hash)
            for users in _chunks(user_ids):
                memberships = await session.exec(
                    select(Membership.user_id, Membership.organization_id, Membership.role).where(
                        col(Membership.user_id).in_(users)
                    )
                )
                for user_id, organization_id, role in memberships.all():
                    roles[user_id][organization_id] = Role(role)
            for hashes in _chunks(idle):
                await session.exec(
                    update(ApiToken)
                    .where(col(ApiToken.token_hash).in_(hashes))
                    .values(last_used_at=now)
                )
            if idle:
                await session.commit()
        return Reading(frozenset(valid), roles, at)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    ordered = sorted(values)
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]
