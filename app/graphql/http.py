"""GraphQL over HTTP and websockets: bearer authentication, one database session per request
(or per websocket connection)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.types.unset import UnsetType

from app.crypto import SecretBox
from app.db import SessionFactory
from app.graphql.context import Context
from app.graphql.loaders import Loaders
from app.graphql.schema import schema
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.services.auth import authenticate

# Subscriptions one websocket connection may hold at once.
MAX_SUBSCRIPTIONS_PER_CONNECTION = 50

UNAUTHENTICATED = {
    "errors": [
        {
            "message": "a valid bearer token is required (Authorization: Bearer <token>)",
            "extensions": {"code": "UNAUTHENTICATED"},
        }
    ]
}


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
        async with connection.sessions() as session:
            token = _operation_context.set(
                dataclasses.replace(connection, session=session, loaders=Loaders(session))
            )
            try:
                yield
            finally:
                _operation_context.reset(token)


class _GraphQLTransportWSHandler(
    _ContextPerOperation, BaseGraphQLTransportWSHandler[Context, None]
):
    async def run_operation(self, operation: Operation[Context, None]) -> None:
        async with self.operation_context():
            await super().run_operation(operation)


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
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            # Not the legacy graphql-ws protocol too: Strawberry runs only subscriptions over
            # it, and clients that offer both (gql does, legacy first) would get it.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self._box = box
        self._sessions = sessions
        self._hub = hub
        self._on_commit = on_commit or (lambda: None)
        self._bus = bus

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
        return UnsetType()  # acknowledge without a payload


class AuthenticatedGraphQL:
    """Opens the request's session, authenticates the bearer token, and answers 401 with a
    GraphQL error when there is no valid one. The GraphiQL page needs no token."""

    def __init__(self, graphql: PromenadeGraphQL, sessions: SessionFactory) -> None:
        self._graphql = graphql
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # The connection's session, which no operation uses: each runs with a session of
            # its own (_ContextPerOperation), so this one holds no database connection while
            # the socket is open.
            async with self._sessions() as session:
                scope.setdefault("state", {})
                scope["state"]["session"] = session
                await self._graphql(scope, receive, send)
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
        async with self._sessions() as session:
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
