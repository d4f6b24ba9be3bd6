"""GraphQL over HTTP and websockets: bearer authentication, one database session per request
(or per websocket connection)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.unset import UnsetType

from app.crypto import SecretBox
from app.db import SessionFactory, closing
from app.graphql.context import Context
from app.graphql.loaders import Loaders
from app.graphql.schema import PromenadeSchema, build_schema, schema
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.services.access_watch import MAX_FAILED_READINGS, AccessWatch, Lost, Watched
from app.services.auth import authenticate

log = logging.getLogger(__name__)

# Subscriptions one websocket connection may hold at once.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 50
# The longest GraphQL document a request may carry; a longer one is refused before parsing.
MAX_DOCUMENT_CHARS = 100_000
# Token checks in a row that may fail (the database not answering) before a socket closes.
MAX_FAILED_TOKEN_CHECKS = MAX_FAILED_READINGS
# A websocket that has not sent connection_init by then is closed (4408).
CONNECTION_INIT_WAIT = timedelta(seconds=5)

UNAUTHENTICATED = {
    "errors": [
        {
            "message": "a valid bearer token is required (Authorization: Bearer <token>)",
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    ]
}


@functools.cache
def _closed_schema() -> PromenadeSchema:
    """The schema of production mode: no introspection, no suggestions (built once)."""
    return build_schema(introspection=False)


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


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


class _GraphQLTransportWSHandler(
    _ContextPerOperation, BaseGraphQLTransportWSHandler[Context, None]
):
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
        if not isinstance(message.get("id"), str) or not _valid_subscribe_payload(payload):
            await self.websocket.close(code=4400, reason="Invalid subscribe payload")
            return
        if self.connection_acknowledged and not await self._still_authenticated():
            await self._close_unauthenticated()
            return
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        async with self.operation_context():
            await super().run_operation(operation)

    async def handle_task_exception(self, error: Exception) -> None:
        # A client that went away while its operation answered is no server error.
        if isinstance(error, WebSocketDisconnected):
            log.debug("a websocket client left while an operation answered it")
            return
        await super().handle_task_exception(error)


def _valid_subscribe_payload(payload: object) -> bool:
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return False
    if len(payload["query"]) > MAX_DOCUMENT_CHARS:
        return False
    variables = payload.get("variables")
    name = payload.get("operationName")
    return (
        (variables is None or isinstance(variables, dict))
        and (name is None or isinstance(name, str))
        and not _holds_nul(payload)
        and not _NUL_ESCAPE.search(payload["query"])
    )


def _wants_ide(request: Request) -> bool:
    """A browser asking for the GraphiQL page (strawberry's own test)."""
    accept = request.headers.get("accept", "")
    return (
        request.method == "GET"
        and "query" not in request.query_params
        and ("text/html" in accept or "*/*" in accept)
    )


class PromenadeGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app, with the context built from what ``AuthenticatedGraphQL`` put in
    the request's state. Websocket clients authenticate in ``connection_init`` with
    ``{"authorization": "Bearer <token>"}``; without a valid token the connection is closed
    with 4403, as the graphql-transport-ws protocol recommends."""

    graphql_transport_ws_handler_class = _GraphQLTransportWSHandler

    def __init__(
        self,
        *,
        box: SecretBox,
        graphiql: bool,
        sessions: SessionFactory,
        hub: EventHub,
        on_commit: Callable[[], None] | None = None,
        bus: Bus | None = None,
        recheck_s: float = 5.0,
        max_sockets_per_user: int = 100,
        introspection: bool = True,
    ) -> None:
        super().__init__(
            schema if introspection else _closed_schema(),
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            connection_init_wait_timeout=CONNECTION_INIT_WAIT,
            # Not the legacy graphql-ws protocol too: Strawberry runs only subscriptions over
            # it, and clients that offer both (gql does, legacy first) would get it.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self._box = box
        self._sessions = sessions
        self._hub = hub
        self._on_commit = on_commit or (lambda: None)
        self._bus = bus
        # How often an open websocket's token is checked again (the bound on how long a
        # revoked token keeps a connection).
        self.recheck_s = recheck_s
        self.access = AccessWatch(sessions, interval_s=recheck_s)
        self.max_sockets_per_user = max_sockets_per_user
        self.sockets_per_user: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Strawberry's refusals (batching, an operation type the transport does not carry)
        # as GraphQL errors, like every other refusal, rather than plain text.
        try:
            response = await self.run(Request(scope=scope, receive=receive))
        except HTTPException as refused:
            reason = refused.reason
            if reason.startswith("subscriptions are not allowed"):
                reason += ": subscribe over a websocket (graphql-transport-ws) at /graphql"
            response = _refused(refused.status_code, reason)
        await response(scope, receive, send)

    async def still_authenticated(self, context: Context) -> bool:
        """Whether the connection's token still authenticates its user."""
        if context.bearer is None or context.authenticated is None:
            return False
        async with self._sessions() as session:
            user = await authenticate(session, context.bearer)
        return user is not None and user.id == context.authenticated.id

    async def get_context(self, request: Any, response: Any) -> Context:
        session = request.state.session
        return Context(
            session=session,
            box=self._box,
            loaders=Loaders(session),
            sessions=self._sessions,
            hub=self._hub,
            after_commit=self._on_commit,
            bus=self._bus,
            recheck_s=self.recheck_s,
            access=self.access,
            authenticated=getattr(request.state, "viewer", None),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        value = params.get("authorization") or params.get("Authorization")
        scheme, _, token = str(value or "").partition(" ")
        viewer = None
        if scheme.lower() == "bearer" and token.strip():
            async with self._sessions() as session:
                viewer = await authenticate(session, token.strip())
                if viewer is not None:
                    session.expunge(viewer)
        if viewer is None:
            raise ConnectionRejectionError({"message": "a valid bearer token is required"})
        context.authenticated = viewer
        context.bearer = token.strip()
        return UnsetType()  # acknowledge without a payload


class AuthenticatedGraphQL:
    """Opens the request's session, authenticates the bearer token, and answers 401 with a
    GraphQL error when there is no valid one. The GraphiQL page needs no token.

    Before any of that, a request that could hurt others is refused with a 4xx and a GraphQL
    error that says why: a body over ``max_body_bytes`` (413, read no further than that), a
    body that is not UTF-8 JSON holding an object, a document over MAX_DOCUMENT_CHARS
    (checked before it is parsed), more websockets from one address than
    ``max_sockets_per_address`` (the handshake is refused)."""

    def __init__(
        self,
        graphql: PromenadeGraphQL,
        sessions: SessionFactory,
        *,
        max_body_bytes: int = 1 << 20,
        max_sockets_per_address: int = 200,
    ) -> None:
        self._graphql = graphql
        self._sessions = sessions
        self._max_body_bytes = max_body_bytes
        self._max_sockets_per_address = max_sockets_per_address
        self._sockets_per_address: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self._graphql(scope, receive, send)
            return
        request = Request(scope)
        if self._graphql.graphql_ide and _wants_ide(request):
            # Strawberry builds the context before it renders the page: answer it here.
            page = await self._graphql.render_graphql_ide(request)
            await page(scope, receive, send)
            return
        if request.method == "POST":
            body = await _read_body(receive, self._max_body_bytes)
            refusal = (
                _refused(413, f"the request body is over {self._max_body_bytes} bytes")
                if body is None
                else _refusal_of(request, body)
            )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = _replay(body or b"", receive)
        async with closing(self._sessions) as session:
            token = bearer_token(request.headers)
            viewer = await authenticate(session, token) if token else None
            if viewer is None:
                response: Response = JSONResponse(
                    UNAUTHENTICATED, status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
            # Detached, so that a rolled-back mutation does not expire the viewer.
            session.expunge(viewer)
            scope.setdefault("state", {})
            scope["state"]["session"] = session
            scope["state"]["viewer"] = viewer
            await self._graphql(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        address = str(client[0]) if client else ""
        if self._sockets_per_address[address] >= self._max_sockets_per_address:
            await receive()  # websocket.connect
            # Closing before accepting refuses the handshake (HTTP 403).
            await send({"type": "websocket.close", "code": 4429})
            return
        self._sockets_per_address[address] += 1
        try:
            # The connection's session, which no operation uses: each runs with a session of
            # its own (_ContextPerOperation), so this one holds no database connection while
            # the socket is open.
            async with closing(self._sessions) as session:
                scope.setdefault("state", {})
                scope["state"]["session"] = session
                await self._graphql(scope, receive, send)
        finally:
            self._sockets_per_address[address] -= 1
            if self._sockets_per_address[address] <= 0:
                del self._sockets_per_address[address]


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is longer than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the body read already to the app, then passes on what the
    server says next (the client going away)."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _refusal_of(request: Request, body: bytes) -> Response | None:
    """Why a POST body cannot be a GraphQL request, as the response that says so; None when
    it can be one. Strawberry reads as JSON every body whose content type mentions
    application/json: each of those is checked here, and nothing else is read."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if "application/json" not in media_type:
        return _refused(415, "send the request as application/json")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _refused(400, "the request body is not UTF-8")
    try:
        document = json.loads(text)
    except ValueError:
        return _refused(400, "the request body is not JSON")
    if not isinstance(document, dict):
        return _refused(400, "the request body must be a JSON object with a query")
    query = document.get("query")
    if not isinstance(query, str):
        return _refused(400, "the request's query must be a string")
    if len(query) > MAX_DOCUMENT_CHARS:
        return _refused(413, f"the query is over {MAX_DOCUMENT_CHARS} characters")
    if not isinstance(document.get("variables"), dict | None):
        return _refused(400, "the request's variables must be a JSON object")
    if not isinstance(document.get("operationName"), str | None):
        return _refused(400, "the request's operationName must be a string")
    if _holds_nul(document) or _NUL_ESCAPE.search(query):
        return _refused(400, NUL_REFUSAL)
    return None


# No field of the API takes a NUL character, and PostgreSQL stores none: refused at the door
# rather than answered with an unexpected error from deep down.
NUL_REFUSAL = "the request may not contain NUL characters (U+0000)"
# A NUL escaped in a GraphQL string literal of the document: \u0000 or \u{0}.
_NUL_ESCAPE = re.compile(r"\\u(?:0000|\{0+\})", re.IGNORECASE)


def _holds_nul(value: object) -> bool:
    """A NUL in any string of a request (a JSON \\u0000 is one once decoded)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _refused(status: int, message: str) -> Response:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]},
        status_code=status,
    )
