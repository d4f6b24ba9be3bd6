"""A worker for the benchmark: ``promenade worker`` with a runtime that starts nothing.

It is wired as ``app.cli._worker`` wires the real command (a RabbitBus, an outbox relay for the
events the step machine records, ``workers.service.Worker``), without the gateway, and with
``NoopRuntime`` in place of LOCAL_PROCESS: a change goes through every step and every database
write of a real one, but no process is started, so what is measured is the engine.

    PROMENADE_DATABASE_URL=... PROMENADE_AMQP_URL=... PROMENADE_SECRET_KEY=... \\
        python -m bench.worker --concurrency 4

It prints ``WORKER_READY`` on stderr once it consumes its data plane's queue, and drains on
SIGTERM or SIGINT as the real worker does. Only the benchmark runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from app import migrate
from app.cli import run
from app.crypto import SecretBox
from app.db import create_engine, create_session_factory
from app.messaging.outbox import OutboxRelay
from app.messaging.rabbit import RabbitBus
from app.services.dataplanes import LOCAL_ROUTING_KEY, resolve_data_plane
from app.serving import stop_on_signals
from app.settings import Settings, SettingsError, load_settings
from workers.planes import always
from workers.runtimes.base import Instance, InstanceSpec
from workers.service import Worker

WORKER_READY = "bench worker ready"
# Where a no-op instance "listens": nothing does, nothing connects to it.
NOOP_ADDRESS = "127.0.0.1:9"
NOOP_GATEWAY = "http://noop.invalid"


class NoopRuntime:
    """A ``workers.runtimes.base.Runtime`` that starts nothing: ``start`` answers at once with
    an instance at a fake address, ``route`` with a URL; the rest does nothing."""

    async def start(self, spec: InstanceSpec) -> Instance:
        return Instance(change_id=spec.change_id, address=NOOP_ADDRESS)

    async def route(self, deployment_id: str, route: str, instance: Instance) -> str:
        return self.endpoint_url(route)

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        return None

    async def stop(self, deployment_id: str, route: str) -> None:
        return None

    def endpoint_url(self, route: str) -> str:
        return f"{NOOP_GATEWAY}{route}"

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        return []

    async def deployments(self) -> set[str]:
        return set()

    async def collect_garbage(self) -> None:
        return None


async def serve(settings: Settings, *, data_plane: str, concurrency: int) -> None:
    """Consume the data plane's commands until SIGTERM or SIGINT, then drain (as
    ``promenade worker --no-gateway`` does, on the no-op runtime)."""
    if not settings.amqp_url:
        raise SettingsError("PROMENADE_AMQP_URL is required")
    engine = create_engine(settings.resolved_database_url)
    try:
        current = await migrate.current_revision(engine)
        if current != migrate.head_revision():
            raise SettingsError(f"the database is at revision {current}, not the head")
        stop = stop_on_signals()
        async with contextlib.AsyncExitStack() as stack:
            bus = RabbitBus(settings.amqp_url)
            await bus.connect()
            stack.push_async_callback(bus.close)
            relay = OutboxRelay(create_session_factory(engine), bus)
            relaying = asyncio.create_task(relay.run())

            async def stop_relay() -> None:
                await relay.stop()
                await relaying

            stack.push_async_callback(stop_relay)
            sessions = create_session_factory(engine)
            async with sessions() as session:
                plane = await resolve_data_plane(session, data_plane)
            worker = Worker(
                sessions=sessions,
                box=SecretBox(settings.secret_keys()),
                bus=bus,
                runtime_for=always(NoopRuntime()),
                planes=[plane],
                concurrency=concurrency,
            )
            await worker.start()
            stack.push_async_callback(worker.drain)
            print(f"{WORKER_READY}: {worker.name} serves {data_plane!r}", file=sys.stderr)
            await stop.wait()
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--data-plane", default=LOCAL_ROUTING_KEY)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--profile", type=Path, help="run under cProfile and write the statistics to this file"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    profiler = cProfile.Profile() if args.profile else None
    try:
        if profiler is not None:
            profiler.enable()
        settings = load_settings()
        # On the event loop the real worker runs on (PROMENADE_EVENT_LOOP, uvloop by default).
        run(
            serve(settings, data_plane=args.data_plane, concurrency=args.concurrency),
            event_loop=settings.event_loop,
        )
    except SettingsError as exc:
        print(f"bench.worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
