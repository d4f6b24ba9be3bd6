"""GraphQL over HTTP and websockets: bearer authentication, one database session per request
(or per websocket connection). Over HTTP, queries come as POST or GET, mutations as POST only
(405 for a GET), and the answer is sent as the media type the client accepts
(app/graphql/media_types.py)."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, process_result
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from app.crypto import SecretBox
from app.db import SessionFactory, closing
from app.graphql.broadcasts import Broadcasts
from app.graphql.context import Context
from app.graphql.ide import GraphiQLPage
from app.graphql.loaders import Loaders
from app.graphql.media_types import GRAPHQL_RESPONSE, JSON, did_not_run, negotiated, status_of
from app.graphql.refusals import (
    read_body,
    refusal_of,
    refusal_of_parameters,
    refused,
    replay,
)
from app.graphql.schema import PromenadeSchema, build_schema, schema
from app.graphql.websocket import (
    MAX_SUBSCRIPTIONS_PER_CONNECTION,
    GraphQLTransportWSHandler,
)
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.services.access_watch import AccessWatch
from app.services.auth import authenticate

log = logging.getLogger(__name__)


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


def _media_type(request: Request) -> str:
    return negotiated(request.headers.get("accept"))


class MutationOverGet(HTTPException):
    """A mutation sent with GET, which may only read: 405, and ``Allow`` says to POST it (the
    GraphQL over HTTP specification's answer; a GET can be replayed by a browser, a proxy or
    a crawler, so it never changes anything)."""

    def __init__(self) -> None:
        super().__init__(405, "mutations are not allowed when using GET: send them with POST")


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

    graphql_transport_ws_handler_class = GraphQLTransportWSHandler

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
        init_wait_s: float = 5.0,
        max_sockets_per_user: int = 100,
        introspection: bool = True,
    ) -> None:
        super().__init__(
            schema if introspection else _closed_schema(),
            graphql_ide="graphiql" if graphiql else None,
            # Queries may be sent with GET (the specification's "MAY"); mutations may not.
            allow_queries_via_get=True,
            max_subscriptions_per_connection=MAX_SUBSCRIPTIONS_PER_CONNECTION,
            # A websocket that has not sent connection_init by then is closed (4408).
            connection_init_wait_timeout=timedelta(seconds=init_wait_s),
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
        self.broadcasts = Broadcasts(self.schema, tick_s=recheck_s)
        self.sockets_per_user: Counter[str] = Counter()
        self._ide_page = GraphiQLPage() if graphiql else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # Strawberry's refusals (batching, an operation type the transport does not carry)
        # as GraphQL errors, like every other refusal, rather than plain text.
        request = Request(scope=scope, receive=receive)
        try:
            response = await self.run(request)
        except HTTPException as refusal:
            reason = refusal.reason
            if reason.startswith("subscriptions are not allowed"):
                reason += ": subscribe over a websocket (graphql-transport-ws) at /graphql"
            allow = {"Allow": "POST"} if isinstance(refusal, MutationOverGet) else None
            if allow is None and refusal.status_code == 405:
                allow = {"Allow": "GET, POST"}
            response = refused(refusal.status_code, reason, _media_type(request), headers=allow)
        await response(scope, receive, send)

    async def render_graphql_ide(self, request: Request) -> Response:
        assert self._ide_page is not None, "GraphiQL is off"
        return self._ide_page.response()

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        # What the answer is sent as travels with the sub-response, which create_response
        # gets (it gets no request).
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = negotiated(request.headers.get("accept"))
        return sub_response

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        try:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except HTTPException as refusal:
            cause = refusal.__cause__
            if (
                isinstance(cause, InvalidOperationTypeError)
                and cause.operation_type == OperationType.MUTATION
                and request_adapter.method == "GET"
            ):
                raise MutationOverGet() from cause
            raise
        status = status_of(result, sub_response.media_type or JSON)
        if status != 200:
            sub_response.status_code = status
        return result

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response = process_result(result)
        if _media_type(request) == GRAPHQL_RESPONSE and did_not_run(result):
            # A request that did not run has no data entry, not a null one.
            del response["data"]
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        response.headers["content-type"] = sub_response.media_type or JSON
        return response

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
        media_type = _media_type(request)
        if request.method == "POST":
            body = await read_body(receive, self._max_body_bytes)
            refusal = (
                refused(413, f"the request body is over {self._max_body_bytes} bytes", media_type)
                if body is None
                else refusal_of(request, body, media_type)
            )
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            receive = replay(body or b"", receive)
        async with closing(self._sessions) as session:
            token = bearer_token(request.headers)
            viewer = await authenticate(session, token) if token else None
            if viewer is None:
                response: Response = JSONResponse(
                    UNAUTHENTICATED,
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                    media_type=media_type,
                )
                await response(scope, receive, send)
                return
            if request.method == "GET":
                # A GET's parameters are held to what a POST's body is; after the token, so
                # that /graphql without one answers 401 to a browser too (where GraphiQL is
                # off).
                refusal = refusal_of_parameters(request, media_type)
                if refusal is not None:
                    await refusal(scope, receive, send)
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
