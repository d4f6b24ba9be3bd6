"""The server-side commands of ``promenade``: migrate, bootstrap, up, api, worker, gateway.

``app.cli`` imports this module only when one of them runs, so that the client commands
(``promenade status``, ``promote``, ...) start without loading the server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiormq.exceptions import AMQPError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import ASGIApp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from app import migrate
from app.crypto import SecretBox
from app.db import create_engine, create_session_factory, session_scope
from app.main import create_app
from app.messaging.bus import Bus
from app.messaging.outbox import OutboxRelay
from app.messaging.retrying import pause
from app.models import RuntimeKind
from app.services.bootstrap import Bootstrapped, bootstrap, is_empty
from app.services.dataplane_settings import ContainerSettings
from app.services.dataplanes import (
    INSTALLATION_LOCAL,
    LOCAL_ROUTING_KEY,
    LocalAdmission,
    ServedDataPlane,
    resolve_data_plane,
    served_data_planes,
)
from app.serving import BackgroundServer, stop_on_signals
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from workers.planes import Runtimes
    from workers.service import Worker

EMBEDDED_ADMIN_EMAIL = "admin@localhost"
EMBEDDED_ORGANIZATION = "default"
BROKER_RETRY_S = 2.0


def configure_logging() -> None:
    """Timestamped lines on stderr, INFO and up, for the long-running commands."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every migration context at INFO; the commands say what matters.
    logging.getLogger("alembic").setLevel(logging.WARNING)


async def run_migrate(settings: Settings, _: argparse.Namespace) -> None:
    engine = _engine(settings)
    try:
        await migrate.upgrade(engine)
        print(f"database at revision {await migrate.current_revision(engine)}", file=sys.stderr)
    finally:
        await engine.dispose()


async def run_rotate_key(settings: Settings, args: argparse.Namespace) -> None:
    """Re-encrypt every secret with the current key (app/services/keys.py says when); with
    ``--new-key``, embedded mode's key file gets a new current key first."""
    from cryptography.fernet import Fernet

    from app.services.keys import rotate_secrets
    from app.settings import SECRET_KEY_FILE

    if args.new_key:
        if settings.secret_key:
            raise SettingsError(
                "--new-key replaces the key in the data directory's secret.key; with "
                "PROMENADE_SECRET_KEY set, set the new key there (and the old one in "
                "PROMENADE_PREVIOUS_SECRET_KEYS) on every process instead"
            )
        keys = settings.secret_keys()  # made if missing
        path = settings.data_dir / SECRET_KEY_FILE
        fresh = Fernet.generate_key().decode()
        _replace_file(path, "\n".join([fresh, *keys]) + "\n")
        print(f"new current key in {path}; the old ones follow it", file=sys.stderr)
    engine = _engine(settings)
    try:
        await migrate.require_current(engine)
        rotation = await rotate_secrets(
            create_session_factory(engine), SecretBox(settings.secret_keys())
        )
    finally:
        await engine.dispose()
    for table, count in rotation.resealed.items():
        print(f"{table}: {count} value(s) sealed again", file=sys.stderr)
    if not rotation.complete:
        for table, ids in rotation.unreadable.items():
            if ids:
                print(
                    f"{table}: {len(ids)} value(s) no key given opens: {', '.join(ids[:20])}"
                    + (" ..." if len(ids) > 20 else ""),
                    file=sys.stderr,
                )
        raise SettingsError(
            "some values are sealed with a key that is not among PROMENADE_SECRET_KEY and "
            "PROMENADE_PREVIOUS_SECRET_KEYS (or secret.key): add that key and run rotate-key "
            "again; until then, no previous key may go"
        )
    print(
        f"every secret is sealed with the current key ({rotation.total} re-encrypted); the "
        "previous keys can go",
        file=sys.stderr,
    )


def _replace_file(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a crash leaves the old file), readable by its owner
    only: a key file half written would lose every key."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


async def run_bootstrap(settings: Settings, args: argparse.Namespace) -> None:
    engine = _engine(settings)
    try:
        await migrate.require_current(engine)
        async with session_scope(create_session_factory(engine)) as session:
            result = await bootstrap(
                session, email=args.email, name=args.name, organization_slug=args.org
            )
        _print_bootstrapped(result)
    finally:
        await engine.dispose()


async def run_up(settings: Settings, args: argparse.Namespace) -> None:
    """API, outbox relay, in-process bus, a worker for the installation's data planes (the
    ``local`` one and every CONTAINER one) and their gateway, in one process."""
    configure_logging()
    from app.messaging.inprocess import InProcessBus
    from workers.planes import Runtimes
    from workers.service import Gateway, Worker

    settings.private_data_dir()
    settings.resolved_secret_key()  # generated once into the data directory
    engine = _engine(settings)
    try:
        await migrate.upgrade(engine)
        async with session_scope(create_session_factory(engine)) as session:
            if await is_empty(session):
                result = await bootstrap(
                    session,
                    email=EMBEDDED_ADMIN_EMAIL,
                    name="Admin",
                    organization_slug=EMBEDDED_ORGANIZATION,
                )
                _print_bootstrapped(result)
        async with contextlib.AsyncExitStack() as stack:
            bus = InProcessBus()
            stack.push_async_callback(bus.close)
            sessions = create_session_factory(engine)
            worker: Worker | None = None

            def after_commit() -> None:
                if worker is not None:
                    worker.look_for_data_planes()  # a data plane created or changed

            app = create_app(settings, engine=engine, bus=bus, on_commit=after_commit)
            relay: OutboxRelay = app.state.relay

            admission = LocalAdmission(settings.local_admission())

            async def container_planes() -> list[ServedDataPlane]:
                """The CONTAINER data planes of the organizations the installation admits:
                in embedded mode they run on the operator's machine too."""
                async with sessions() as session:
                    planes = await served_data_planes(session, frozenset({RuntimeKind.CONTAINER}))
                return [p for p in planes if p.organization and admission.admits(p.organization)]

            runtimes = Runtimes.for_settings(settings)
            worker = Worker(
                sessions=sessions,
                box=SecretBox(settings.secret_keys()),
                bus=bus,
                runtime_for=runtimes.runtime_for,
                planes=[INSTALLATION_LOCAL],
                discover=container_planes,
                stop_instances_on_drain=True,
                after_commit=relay.wake,
                health_timeout_s=settings.health_timeout_s,
                admission=admission,
            )
            await worker.start()
            stack.push_async_callback(worker.drain)
            gateway = Gateway(settings)
            await gateway.start()
            stack.push_async_callback(gateway.stop)
            print(f"Gateway at {settings.resolved_gateway_url}", file=sys.stderr)
            await _print_isolation(settings, runtimes)
            await _serve(settings, args, app)
    finally:
        await engine.dispose()


async def _print_isolation(settings: Settings, runtimes: Runtimes) -> None:
    """Say how integrations are isolated here, and how to run them in containers."""
    from app.settings import DEFAULT_DOCKER_HOST
    from workers.runtimes.container import ContainerRuntime, EngineUnavailable

    if runtimes.users is not None:
        print(
            "LOCAL_PROCESS: each deployment's instances run as a Unix user of their own",
            file=sys.stderr,
        )
    else:
        print(f"LOCAL_PROCESS: not isolated: {runtimes.sandbox_refusal}", file=sys.stderr)
    probe = ContainerRuntime(
        settings.containers_dir,
        runtimes.routes,
        data_plane="probe",
        settings=ContainerSettings(),
        docker_host=settings.docker_host,
    )
    try:
        version = await probe.check()
    except EngineUnavailable as exc:
        print(
            f"CONTAINER: unavailable ({exc}); CONTAINER data planes wait until a Docker "
            f"Engine answers at DOCKER_HOST (default {DEFAULT_DOCKER_HOST})",
            file=sys.stderr,
        )
    else:
        print(
            f"CONTAINER: Docker Engine {version} at {probe.docker_host}. For isolated "
            "integrations, create a data plane with runtime CONTAINER (createDataPlane) and "
            "environments on it; a build's artifact is then an image the engine has "
            "(README: 'Integrations in containers')",
            file=sys.stderr,
        )
    finally:
        probe.close()


async def run_api(settings: Settings, args: argparse.Namespace) -> None:
    configure_logging()
    from app.messaging.rabbit import RabbitBus

    engine = _engine(settings)
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
        await _serve(settings, args, app)
    finally:
        await engine.dispose()


async def run_worker(settings: Settings, args: argparse.Namespace) -> None:
    """Consume the given data planes' commands until SIGTERM, then drain."""
    configure_logging()
    from app.messaging.rabbit import RabbitBus
    from workers.planes import CannotServe, Runtimes
    from workers.service import Gateway, Worker

    if not settings.amqp_url:
        raise SettingsError(
            "PROMENADE_AMQP_URL is required for promenade worker (promenade up runs a worker "
            "in its own process, on the in-process bus)"
        )
    if args.concurrency < 1:
        raise SettingsError("--concurrency must be at least 1")
    settings.private_data_dir()
    engine = _engine(settings)
    try:
        await migrate.require_current(engine)
        sessions = create_session_factory(engine)
        async with sessions() as session:
            planes = [
                await resolve_data_plane(session, selector)
                for selector in dict.fromkeys(args.data_plane or [LOCAL_ROUTING_KEY])
            ]
        stop = stop_on_signals()
        async with contextlib.AsyncExitStack() as stack:
            bus = RabbitBus(settings.amqp_url)
            relay = await _start_relay(stack, engine, bus)
            runtimes = Runtimes.for_settings(settings)
            worker = Worker(
                sessions=sessions,
                box=SecretBox(settings.secret_keys()),
                bus=bus,
                runtime_for=runtimes.runtime_for,
                planes=planes,
                concurrency=args.concurrency,
                pause_after_step=settings.pause_after_step,
                after_commit=relay.wake,
                health_timeout_s=settings.health_timeout_s,
                admission=LocalAdmission(settings.local_admission()),
            )
            if args.gateway:
                gateway = Gateway(settings)
                await gateway.start()
                stack.push_async_callback(gateway.stop)
            try:
                if not await _start_when_broker_answers(worker, stop):
                    return
            except CannotServe as exc:
                raise SettingsError(str(exc)) from None
            stack.push_async_callback(worker.drain)
            if runtimes.users is None and any(
                p.runtime is RuntimeKind.LOCAL_PROCESS for p in planes
            ):
                print(f"LOCAL_PROCESS: not isolated: {runtimes.sandbox_refusal}", file=sys.stderr)
            labels = ", ".join(plane.label for plane in planes)
            print(f"Worker {worker.name} serves data planes {labels}", file=sys.stderr)
            await stop.wait()
            print("Draining: no new commands; waiting for the running ones", file=sys.stderr)
    finally:
        await engine.dispose()


async def _start_when_broker_answers(worker: Worker, stop: asyncio.Event) -> bool:
    """Start consuming, retrying every BROKER_RETRY_S while the broker does not answer; False
    if stopped first (a stop cuts the pause short, and no attempt follows it)."""

    async def start() -> bool:
        if stop.is_set():
            return False
        await worker.start()
        return True

    def say_waiting(state: RetryCallState) -> None:
        if state.attempt_number == 1 and state.outcome is not None:
            exc = state.outcome.exception()
            print(f"Waiting for RabbitMQ ({type(exc).__name__}: {exc})", file=sys.stderr)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type((OSError, AMQPError)),
        wait=wait_fixed(BROKER_RETRY_S),
        sleep=lambda seconds: pause(seconds, unless=stop),
        before_sleep=say_waiting,
    )
    started: bool = await retrying(start)
    return started


async def run_gateway(settings: Settings, _: argparse.Namespace) -> None:
    configure_logging()
    from workers.service import Gateway

    stop = stop_on_signals()
    gateway = Gateway(settings)
    await gateway.start()
    print(f"Gateway at {settings.resolved_gateway_url}", file=sys.stderr)
    try:
        await stop.wait()
    finally:
        await gateway.stop()


async def _start_relay(
    stack: contextlib.AsyncExitStack, engine: AsyncEngine, bus: Bus
) -> OutboxRelay:
    """Run the outbox relay until the stack closes (then stop it and close the bus). The bus
    connects when it is first used: a broker that is down delays messages, not the start."""
    stack.push_async_callback(bus.close)
    relay = OutboxRelay(create_session_factory(engine), bus)
    task = asyncio.create_task(relay.run())

    async def stop() -> None:
        await relay.stop()
        await task

    stack.push_async_callback(stop)
    return relay


async def _serve(settings: Settings, args: argparse.Namespace, app: Starlette) -> None:
    """Serve the API until SIGTERM or SIGINT (its lifespan starts and stops what it runs
    beside serving); the caller's stack then stops the rest."""
    host = args.host or settings.host
    port = args.port or settings.port
    stop = stop_on_signals()
    server = api_server(app, settings, host=host, port=port)
    await server.start()
    print(f"Promenade GraphQL at http://{host}:{port}/graphql", file=sys.stderr)
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


def _engine(settings: Settings) -> AsyncEngine:
    if settings.is_sqlite:
        settings.private_data_dir()
    return create_engine(settings.resolved_database_url)


def _print_bootstrapped(result: Bootstrapped) -> None:
    where = f" in organization {result.organization.slug!r}" if result.organization else ""
    print(f"User {result.user.email}{where}. API token (shown once):", file=sys.stderr)
    print(result.token, flush=True)
