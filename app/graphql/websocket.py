"""GraphQL over websockets (graphql-transport-ws): each operation with a session of its own,
the token checked before each operation and while the socket is open, bounded sockets and
subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.graphql.refusals import valid_subscribe_payload

if TYPE_CHECKING:
    from app.graphql.http import PromenadeGraphQL
import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

from graphql import OperationType
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)

from app.db import closing
from app.graphql.broadcasts import (
    COMPLETE,
    TICK,
    Frame,
    Question,
    chosen_operation,
    shared_field_of,
)
from app.graphql.context import Context
from app.graphql.loaders import Loaders
from app.graphql.metrics import SUBSCRIPTIONS, WEBSOCKETS
from app.messaging.fanout import Mailbox, SubscriberTooSlow
from app.models import Role
from app.services.access_watch import MAX_FAILED_READINGS, Lost, Watched

log = logging.getLogger(__name__)

# Subscriptions one websocket connection may hold at once.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 50


# Token checks in a row that may fail (the database not answering) before a socket closes.
MAX_FAILED_TOKEN_CHECKS = MAX_FAILED_READINGS


# The context of the websocket operation running in this task (each runs in a task of its own).
_operation_context: ContextVar[Context | None] = ContextVar("operation_context", default=None)


class _ContextPerOperation:
    """For Strawberry's websocket handler, which builds one context per connection: each
    operation (subscription, query, mutation) runs with a copy of it that has a session and
    DataLoaders of its own, closed when the operation ends. Otherwise every operation of a
    socket shares one session: a query sees what the connection's first reads cached, the
    session keeps its database connection (in a transaction) for as long as the socket is
    open, and two mutations of one socket commit or roll back each other's work."""

    _connection_context: Context

    @property
    def context(self) -> Context:
        return _operation_context.get() or self._connection_context

    @context.setter
    def context(self, value: Context) -> None:
        self._connection_context = value

    @contextlib.asynccontextmanager
    async def shared_context(self, roles: dict[str, Role]) -> AsyncIterator[Context]:
        """The context of an execution that sockets with these roles share: a session of its
        own, and the roles as they were when it started (each socket checks its own)."""
        connection = self._connection_context
        async with closing(connection.sessions) as session:
            yield dataclasses.replace(
                connection,
                session=session,
                loaders=Loaders(session),
                fixed_roles=roles,
                _roles=None,
                _fresh_roles=None,
            )

    @contextlib.asynccontextmanager
    async def operation_context(self) -> AsyncIterator[None]:
        connection = self._connection_context
        async with closing(connection.sessions) as session:
            # Roles are read again for each operation: a member removed meanwhile has none.
            token = _operation_context.set(
                dataclasses.replace(
                    connection, session=session, loaders=Loaders(session), _roles=None
                )
            )
            try:
                yield
            finally:
                _operation_context.reset(token)


class GraphQLTransportWSHandler(_ContextPerOperation, BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws with Promenade's rules on top: the token is checked before each
    operation and, through the process's access watch, every few seconds (a revoked one
    closes the socket, 4403; one that cannot be checked closes it after a few tries, 1011),
    a malformed ``subscribe`` closes it with the protocol's 4400, and a user holds a bounded
    number of sockets (4429)."""

    view: PromenadeGraphQL
    _counted_user: str | None = None
    _failed_checks = 0
    _watched: Watched | None = None
    _closing: asyncio.Task[None] | None = None

    async def handle(self) -> None:
        with WEBSOCKETS.track_inprogress():
            await super().handle()

    async def shutdown(self) -> None:
        if self._watched is not None:
            self.view.access.unwatch(self._watched)
            self._watched = None
        if self._counted_user is not None:
            self.view.sockets_per_user[self._counted_user] -= 1
            self._counted_user = None
        await super().shutdown()

    def _lost(self, lost: Lost) -> None:
        """The access watch found the token no longer authenticates (or cannot tell)."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._close_lost(lost))
            self._closing.add_done_callback(self._task_done)

    async def _close_lost(self, lost: Lost) -> None:
        try:
            await self._close_unauthenticated(lost)
        except Exception:  # closed meanwhile (an operation's check closed it, or the client)
            log.debug("a websocket that lost its access was closed already", exc_info=True)

    async def _still_authenticated(self) -> bool:
        """Whether the token still authenticates its user, read now. A check that cannot be
        made (the database does not answer) counts as passed a few times in a row, not
        more."""
        try:
            current = await self.view.still_authenticated(self._connection_context)
        except Exception:
            self._failed_checks += 1
            log.warning("could not check a websocket's token", exc_info=True)
            return self._failed_checks < MAX_FAILED_TOKEN_CHECKS
        self._failed_checks = 0
        return current

    async def _close_unauthenticated(self, lost: Lost = Lost.REVOKED) -> None:
        if lost is Lost.UNCHECKED or self._failed_checks >= MAX_FAILED_TOKEN_CHECKS:
            await self.websocket.close(code=1011, reason="The token cannot be checked now")
        else:
            await self.websocket.close(code=4403, reason="Forbidden: the token is revoked")

    async def handle_connection_init(self, message: Any) -> None:
        await super().handle_connection_init(message)
        context = self._connection_context
        viewer = context.authenticated
        if not self.connection_acknowledged or viewer is None or self._counted_user:
            return
        counts = self.view.sockets_per_user
        if counts[viewer.id] >= self.view.max_sockets_per_user:
            await self.websocket.close(code=4429, reason="Too many connections for this user")
            return
        counts[viewer.id] += 1
        self._counted_user = viewer.id
        self._watched = self.view.access.watch(context.bearer or "", viewer.id, self._lost)

    async def handle_subscribe(self, message: Any) -> None:
        payload = message.get("payload")
        if not isinstance(message.get("id"), str) or not valid_subscribe_payload(payload):
            await self.websocket.close(code=4400, reason="Invalid subscribe payload")
            return
        if self.connection_acknowledged and not await self._still_authenticated():
            await self._close_unauthenticated()
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        chosen = chosen_operation(operation.query, operation.operation_name)
        if chosen is None or chosen.operation is not OperationType.SUBSCRIPTION:
            await self._run_operation(operation, None)
            return
        with SUBSCRIPTIONS.track_inprogress():
            await self._run_operation(operation, shared_field_of(chosen))

    async def _run_operation(self, operation: Operation[Context, None], shared: str | None) -> None:
        if shared is not None and self._connection_context.authenticated is not None:
            await self._run_shared(operation, shared)
            return
        async with self.operation_context():
            await super().run_operation(operation)

    async def _run_shared(self, operation: Operation[Context, None], field_name: str) -> None:
        """The operation as one of the sockets that ask the same question (broadcasts.py)."""
        connection = self._connection_context
        try:
            roles: dict[str, Role] | None = dict(await connection.current_roles())
            while roles is not None:
                question = Question.of(
                    operation.query, operation.variables, operation.operation_name, roles
                )
                opener = functools.partial(self.shared_context, roles)
                with self.view.broadcasts.listen(question, opener) as listener:
                    roles = await self._forward(operation, field_name, listener, roles)
        except WebSocketDisconnected:
            log.debug("a websocket client left while a shared subscription served it")
        except Exception as error:
            await self.handle_task_exception(error)
            with contextlib.suppress(Exception):
                await self._send(operation, COMPLETE)
            raise

    async def _forward(
        self,
        operation: Operation[Context, None],
        field_name: str,
        listener: Mailbox[Frame],
        roles: dict[str, Role],
    ) -> dict[str, Role] | None:
        """Sends the shared execution's frames to this socket until the subscription ends
        (None), or until the viewer's roles are no longer those it shares (the roles now)."""
        connection = self._connection_context
        while True:
            try:
                frame = await listener.next()
            except SubscriberTooSlow as slow:
                await self._send(operation, Frame.refusal(field_name, str(slow), "TOO_SLOW"))
                await self._send(operation, COMPLETE)
                return None
            current = await connection.current_roles()
            if current != roles:
                return dict(current)
            if frame is None or frame is TICK:
                continue
            await self._send(operation, frame)
            if frame.final:
                return None

    async def _send(self, operation: Operation[Context, None], frame: Frame) -> None:
        """A frame of the operation, as ``Operation.send_operation_message`` sends one."""
        if operation.completed:
            return
        if frame.final:
            operation.completed = True
            self.operations.pop(operation.id, None)
        assert isinstance(self.websocket, ASGIWebSocketAdapter)
        try:
            await self.websocket.ws.send_text(frame.addressed_to(operation.id))
        except WebSocketDisconnect as closed:
            raise WebSocketDisconnected from closed

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that went away while its operation answered is no server error.
        if isinstance(error, WebSocketDisconnected):
            log.debug("a websocket client left while an operation answered it")
            return
        await super().handle_task_exception(error)
