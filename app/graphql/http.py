"""GraphQL over HTTP: bearer authentication, one database session per request."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL

from app.crypto import SecretBox
from app.db import SessionFactory
from app.graphql.context import Context
from app.graphql.loaders import Loaders
from app.graphql.schema import schema
from app.services.auth import authenticate

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


class PromenadeGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app, with the context built from what ``AuthenticatedGraphQL`` put in
    the request's state."""

    def __init__(self, *, box: SecretBox, graphiql: bool) -> None:
        super().__init__(
            schema, graphql_ide="graphiql" if graphiql else None, allow_queries_via_get=False
        )
        self._box = box

    async def get_context(self, request: Any, response: Any) -> Context:
        session = request.state.session
        return Context(
            session=session, viewer=request.state.viewer, box=self._box, loaders=Loaders(session)
        )


class AuthenticatedGraphQL:
    """Opens the request's session, authenticates the bearer token, and answers 401 with a
    GraphQL error when there is no valid one. GET (the GraphiQL page) needs no token."""

    def __init__(self, graphql: PromenadeGraphQL, sessions: SessionFactory) -> None:
        self._graphql = graphql
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self._graphql(scope, receive, send)
            return
        request = Request(scope)
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
