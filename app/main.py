"""The API application: GraphQL at /graphql, health at /healthz and /readyz (app.readiness),
Prometheus metrics at /metrics (app.metrics), and what an API process runs
beside serving, owned by the application's lifespan, so that whatever serves it (``promenade
api``, ``promenade up``, or ``uvicorn --factory app.main:api``) runs a complete API:

- with a bus, the outbox relay (the commands and events that mutations write leave after
  each commit) and the event hub (the bus's events reach this process's subscriptions);
  without one, subscriptions poll the database;
- the expiry sweep (promotion requests that nobody decided on in time expire) and the
  schedule sweep (scheduled promotions whose time came start), and the release sweep
  (releases move on to their next member).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from app import migrate
from app.console import Console
from app.crypto import SecretBox
from app.database_metrics import database_refresher
from app.db import RequestSession, create_engine, create_session_factory
from app.delivery_gauges import delivery_refresher
from app.graphql.http import AuthenticatedGraphQL, PromenadeGraphQL
from app.graphql.ide import ide_routes
from app.log_lines import keep_query_strings_out_of_access_lines
from app.messaging.bus import Bus
from app.messaging.fanout import EventHub
from app.messaging.outbox import OutboxRelay
from app.metrics import Refresher, metrics_endpoint
from app.readiness import Readiness, broker_check, database_checks
from app.settings import Settings
from app.sweeps import ExpirySweep, ReleaseSweep, ScheduleSweep


def create_app(
    settings: Settings,
    *,
    engine: AsyncEngine | None = None,
    bus: Bus | None = None,
    on_commit: Callable[[], None] | None = None,
    owns_bus: bool = False,
    metrics_refreshers: Sequence[Refresher] = (),
) -> Starlette:
    """The application. ``bus`` carries its outbox's messages and requests to the data planes'
    workers (an instance's logs), and brings their events; ``on_commit`` runs after each
    mutation that committed, beside waking the relay. What the app made itself (the engine,
    and the bus when ``owns_bus``) it closes when it shuts down. ``app.state.relay`` (None
    without a bus), ``app.state.hub`` and ``app.state.broadcasts`` (the subscriptions that
    sockets share) are for what runs beside it in one process; ``metrics_refreshers`` too, for
    what its ``/metrics`` reports of them (embedded mode's worker)."""
    keep_query_strings_out_of_access_lines()
    owns_engine = engine is None
    if engine is None:
        engine = create_engine(settings.resolved_database_url)
    relay = OutboxRelay(create_session_factory(engine), bus) if bus is not None else None
    hub = EventHub(bus)

    def after_commit() -> None:
        if relay is not None:
            relay.wake()
        if on_commit is not None:
            on_commit()

    sweep = ExpirySweep(
        create_session_factory(engine), interval_s=settings.expiry_sweep_s, on_change=after_commit
    )
    box = SecretBox(settings.secret_keys())
    schedule = ScheduleSweep(
        create_session_factory(engine),
        box=box,
        interval_s=settings.schedule_sweep_s,
        on_change=after_commit,
    )
    releases = ReleaseSweep(
        create_session_factory(engine),
        box=box,
        interval_s=settings.schedule_sweep_s,
        on_change=after_commit,
    )
    sessions = create_session_factory(engine, class_=RequestSession)
    api = PromenadeGraphQL(
        box=box,
        graphiql=not settings.production,
        sessions=sessions,
        hub=hub,
        on_commit=after_commit,
        bus=bus,
        recheck_s=settings.ws_recheck_s,
        init_wait_s=settings.ws_init_wait_s,
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

    readiness = Readiness(
        database_checks(engine) + ([broker_check(bus)] if bus is not None else [])
    )

    async def readyz(_: Request) -> JSONResponse:
        return await readiness.response()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if owns_engine:
                stack.push_async_callback(engine.dispose)
            if owns_bus and bus is not None:
                stack.push_async_callback(bus.close)
            await migrate.require_current(engine)
            if relay is not None:
                relaying = asyncio.create_task(relay.run())

                async def stop_relay() -> None:
                    await relay.stop()
                    await relaying

                stack.push_async_callback(stop_relay)
            await hub.start()
            stack.push_async_callback(hub.stop)
            sweep.start()
            stack.push_async_callback(sweep.stop)
            schedule.start()
            stack.push_async_callback(schedule.stop)
            releases.start()
            stack.push_async_callback(releases.stop)
            stack.push_async_callback(api.access.close)
            yield

    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            *ide_routes(enabled=not settings.production),
            *Console().routes(),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route(
                "/metrics",
                metrics_endpoint(
                    [database_refresher(engine), delivery_refresher(engine), *metrics_refreshers],
                    token=settings.metrics_token,
                ),
            ),
        ],
        lifespan=lifespan,
    )
    app.state.relay = relay
    app.state.hub = hub
    app.state.broadcasts = api.broadcasts
    return app


def api() -> Starlette:
    """The API as configured by the environment (PROMENADE_* variables, as ``promenade api``
    reads them), for an ASGI server of one's choosing: ``uvicorn --factory app.main:api``.
    With PROMENADE_AMQP_URL, it publishes over RabbitMQ and hears the workers' events."""
    from app.messaging.rabbit import RabbitBus

    settings = Settings()
    bus = RabbitBus(settings.amqp_url) if settings.amqp_url else None
    return create_app(settings, bus=bus, owns_bus=True)
