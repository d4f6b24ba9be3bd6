"""``promenade api``: the API application (``app.main``) under uvicorn, publishing and hearing
events over RabbitMQ; and how an API is served in a process (``promenade up`` serves it too)."""

from __future__ import annotations

import argparse
import sys

from starlette.applications import Starlette
from starlette.types import ASGIApp

from app import migrate
from app.main import create_app
from app.messaging.bus import Bus
from app.processes.startup import configure_logging, engine_for
from app.serving import BackgroundServer, freeze_startup_heap, stop_on_signals
from app.settings import Settings


async def run_api(settings: Settings, args: argparse.Namespace) -> None:
    configure_logging()
    from app.messaging.rabbit import RabbitBus

    engine = engine_for(settings)
    try:
        await migrate.require_current(engine)
        bus: Bus | None = None
        if settings.amqp_url:
            bus = RabbitBus(settings.amqp_url)
        else:
            print(
                "promenade api: PROMENADE_AMQP_URL is not set: changes are recorded, but no "
                "worker hears of them (promenade up runs everything in one process)",
                file=sys.stderr,
            )
        app = create_app(settings, engine=engine, bus=bus, owns_bus=True)
        await serve(settings, args, app)
    finally:
        await engine.dispose()


async def serve(settings: Settings, args: argparse.Namespace, app: Starlette) -> None:
    """Serve the API until SIGTERM or SIGINT (its lifespan starts and stops what it runs
    beside serving); the caller's stack then stops the rest."""
    host = args.host or settings.host
    port = args.port or settings.port
    stop = stop_on_signals()
    server = api_server(app, settings, host=host, port=port)
    await server.start()
    freeze_startup_heap()
    print(f"Promenade GraphQL at http://{host}:{port}/graphql", file=sys.stderr)
    print(f"Promenade console at http://{host}:{port}/", file=sys.stderr)
    try:
        await stop.wait()
    finally:
        await server.stop()


def api_server(
    app: ASGIApp, settings: Settings, *, host: str, port: int, access_log: bool = True
) -> BackgroundServer:
    """The API's uvicorn server: websocket messages bounded like request bodies."""
    return BackgroundServer(
        app,
        host=host,
        port=port,
        setting="PROMENADE_PORT",
        access_log=access_log,
        ws_max_size=settings.max_body_bytes,
    )
