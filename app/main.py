"""The Starlette application: GraphQL at /graphql, health at /healthz."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from app.crypto import SecretBox
from app.db import RequestSession, create_engine, create_session_factory
from app.graphql.http import AuthenticatedGraphQL, PromenadeGraphQL
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.settings import Settings


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    on_commit: Callable[[], None] | None = None,
    hub: EventHub | None = None,
    bus: Bus | None = None,
) -> Starlette:
    """The application; it disposes of the engine it made itself when it shuts down.
    ``on_commit`` runs after each mutation that committed (the outbox relay's wake-up); ``hub``
    brings the bus's events to subscriptions (without one, subscriptions poll the database); ``bus``
    carries requests to the data planes' workers (an instance's logs)."""
    owns_engine = engine is None
    if engine is None:
        engine = create_engine(settings.resolved_database_url)
    sessions = create_session_factory(engine, class_=RequestSession)
    box = SecretBox(settings.secret_keys())
    api = PromenadeGraphQL(
        box=box,
        graphiql=not settings.production,
        sessions=sessions,
        hub=hub or EventHub(None),
        on_commit=on_commit,
        bus=bus,
        recheck_s=settings.ws_recheck_s,
        max_sockets_per_user=settings.ws_per_user,
        introspection=settings.introspection_on,
    )
    graphql = AuthenticatedGraphQL(
        api,
        sessions,
        max_body_bytes=settings.max_body_bytes,
        max_sockets_per_address=settings.ws_per_address,
    )

    async def healthz(_: Request) -> JSONResponse:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await api.access.close()
        if owns_engine:
            await engine.dispose()

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
        ],
        lifespan=lifespan,
    )
