"""``promenade worker``: consume the commands of given data planes from RabbitMQ, with the outbox
relay of what the worker writes, and (unless ``--no-gateway``) the LOCAL_PROCESS gateway;
drain on SIGTERM. It waits for a broker that does not answer yet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import TYPE_CHECKING

from aiormq.exceptions import AMQPError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from app import migrate
from app.crypto import SecretBox
from app.db import create_session_factory
from app.messaging.bus import Bus
from app.messaging.outbox import OutboxRelay
from app.messaging.retrying import pause
from app.models import RuntimeKind
from app.processes.operations import operations_app
from app.processes.startup import configure_logging, engine_for
from app.services.dataplanes import LOCAL_ROUTING_KEY, LocalAdmission, resolve_data_plane
from app.serving import BackgroundServer, stop_on_signals
from app.settings import Settings, SettingsError

if TYPE_CHECKING:
    from workers.service import Worker

# Seconds between attempts to start consuming while the broker does not answer.
BROKER_RETRY_S = 2.0


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
    engine = engine_for(settings)
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
            if settings.worker_port is not None:
                # Before the broker answers: /healthz answers and /readyz says what is missing.
                operations = BackgroundServer(
                    operations_app(
                        engine,
                        bus,
                        consuming=lambda: bool(worker.served),
                        refreshers=[worker.report_metrics],
                        metrics_token=settings.metrics_token,
                    ),
                    host=settings.worker_host,
                    port=settings.worker_port,
                    setting="PROMENADE_WORKER_PORT",
                    access_log=False,
                )
                await operations.start()
                stack.push_async_callback(operations.stop)
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
