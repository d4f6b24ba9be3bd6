"""The typed request context that every resolver receives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry.types import Info as StrawberryInfo

from app.crypto import SecretBox
from app.db import SessionFactory
from app.graphql.loaders import Loaders, forget
from app.graphql.public_error import PublicError
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.models import Role, User
from app.services.access_watch import AccessWatch
from app.services.auth import roles_of
from app.services.masking import without_output


@dataclass
class Context:
    """One per HTTP request, or per websocket connection (whose viewer is known once its
    ``connection_init`` carried a valid token)."""

    session: AsyncSession
    box: SecretBox
    loaders: Loaders
    sessions: SessionFactory
    hub: EventHub
    # Called after a mutation commits: it wakes the outbox relay, so commands leave now.
    after_commit: Callable[[], None] = lambda: None
    # Asks the data planes' workers (an instance's logs); None without a broker.
    bus: Bus | None = None
    authenticated: User | None = None
    # The bearer token a websocket connection authenticated with (checked again while it is
    # open, and before each operation: a revoked token loses the connection).
    bearer: str | None = field(default=None, repr=False)
    # How often a long-lived subscription checks again that its viewer may still see it.
    recheck_s: float = 5.0
    # What a websocket client sent in connection_init (Strawberry sets it).
    connection_params: dict[str, object] | None = None
    # What the open websockets' viewers may do, read for all of them at once.
    access: AccessWatch | None = None
    # A shared subscription's execution (app/graphql/broadcasts.py): the roles of everyone it
    # serves, the same for all of them by construction; each socket checks its own.
    fixed_roles: dict[str, Role] | None = field(default=None, repr=False)
    _roles: dict[str, Role] | None = field(default=None, repr=False)
    # Roles read by this connection itself, and when (see current_roles).
    _fresh_roles: tuple[dict[str, Role], float] | None = field(default=None, repr=False)

    @property
    def viewer(self) -> User:
        if self.authenticated is None:
            raise PublicError("a valid bearer token is required", code="UNAUTHENTICATED")
        return self.authenticated

    async def role_in(self, organization_id: str) -> Role | None:
        """The viewer's role in an organization (read once per request)."""
        if self.fixed_roles is not None:
            return self.fixed_roles.get(organization_id)
        if self._roles is None:
            memberships = await self.loaders.memberships_by_user.load(self.viewer.id)
            self._roles = {m.organization_id: m.role for m in memberships}
        return self._roles.get(organization_id)

    async def can_read(self, organization_id: str) -> bool:
        return await self.role_in(organization_id) is not None

    async def output_for_viewer(self, organization_id: str, text: str | None) -> str | None:
        """A failure text as the viewer may read it: an instance's output is for DEVELOPERs
        and ADMINs; the others get the reason without it."""
        if text is None:
            return None
        if await self._current_role(organization_id) in (Role.ADMIN, Role.DEVELOPER):
            return text
        return without_output(text)

    async def _current_role(self, organization_id: str) -> Role | None:
        if self.bearer is None:  # an HTTP request: its own session, for its short life
            return await self.role_in(organization_id)
        return (await self.current_roles()).get(organization_id)

    async def current_roles(self) -> dict[str, Role]:
        """The viewer's roles (organization id -> role) as of at most ``recheck_s`` ago. A
        websocket's subscriptions live long: they read the roles the access watch read for
        every open socket, or, until it has, read them in a short session of their own (the
        operation's would keep a database connection for as long as the subscription
        lives). A demoted or removed member soon reads as such."""
        if self.fixed_roles is not None:
            return self.fixed_roles
        if self.access is not None:
            watched = self.access.roles_of(self.viewer.id)
            if watched is not None:
                return watched
        now = time.monotonic()
        if self._fresh_roles is not None and now - self._fresh_roles[1] < self.recheck_s:
            return self._fresh_roles[0]
        async with self.sessions() as session:
            roles = await roles_of(session, self.viewer.id)
        self._fresh_roles = (roles, now)
        return roles

    def forget_roles(self) -> None:
        """After a mutation that changes memberships."""
        self._roles = None
        forget(self.loaders.memberships_by_user, self.viewer.id)


Info: TypeAlias = StrawberryInfo[Context, None]
