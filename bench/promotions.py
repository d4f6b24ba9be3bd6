"""Promotions per second through RabbitMQ and PostgreSQL, next to what the broker itself can do.

One run measures, on the machine's RabbitMQ and PostgreSQL:

1. the baseline: raw aio-pika publishes of persistent messages with publisher confirms, one at
   a time (each confirm awaited before the next publish), to a durable quorum queue;
2. promotions per second: an organization with the pipeline Development -> Production and M
   integrations, each deployed to Development and ACTIVE there, set up through
   ``app.services``; then every integration is promoted to Production through
   ``app.services.promotions.promote`` (each request in its own transaction, the outbox relay
   of this process woken after each commit, as the API does; --clients requests at a time, one
   by default) and the run waits until every promotion is SUCCEEDED. Worker processes (two by
   default, ``python -m bench.worker``: the real ``workers.service.Worker`` and outbox relay,
   on a runtime that starts nothing) apply them. promotions/s is M divided by the time from
   just before the first request to the last ``finished_at``; each promotion's latency is its
   ``finished_at - requested_at``.

Everything it creates is removed when it ends, on Ctrl-C and SIGTERM too: a RabbitMQ virtual
host of its own (``rabbitmqctl add_vhost``, so rabbitmqctl must reach the broker of the AMQP
URL), a PostgreSQL database of its own, and the worker processes.

    python -m bench.promotions [--integrations 50] [--messages 2000] [--clients 1] [--json]

The broker comes from --amqp-url, else PROMENADE_TEST_AMQP_URL, else
amqp://guest:guest@127.0.0.1:5672/; the PostgreSQL server from --database-url, else
PROMENADE_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test (only used to
create and drop the run's database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import math
import os
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import aiormq
from cryptography.fernet import Fernet
from sqlalchemy import func, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app import migrate
from app.crypto import SecretBox
from app.db import SessionFactory, create_engine, create_session_factory, session_scope
from app.messaging.outbox import OutboxRelay
from app.messaging.rabbit import RabbitBus
from app.models import (
    Build,
    Deployment,
    DeploymentStatus,
    OutboxMessage,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    User,
)
from app.models.base import utcnow
from app.services.bootstrap import bootstrap
from app.services.changes import deploy
from app.services.pipelines import stage_environment_ids
from app.services.projects import create_build, create_integration, create_project
from app.services.promotions import PromotionRequest, promote
from app.settings import async_database_url
from bench.worker import WORKER_READY

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
REPOSITORY = Path(__file__).resolve().parents[1]

BASELINE_QUEUE = "bench.baseline"
BASELINE_WARMUP = 100
# The raw round trip: publish -> consume -> publish -> consume, through these two queues.
ROUND_TRIP_QUEUES = ("bench.round-trip.request", "bench.round-trip.reply")
ROUND_TRIPS = 200
# A command's body, as the outbox relay publishes it: about the same size.
BASELINE_BODY = json.dumps(
    {"change_id": "chg_01JZZZZZZZZZZZZZZZZZZZZZZZ", "deployment_id": "dep_01JZZZZZZZZZZZZZZZZZZZ"},
    separators=(",", ":"),
).encode()

POLL_INTERVAL_S = 0.02
# How long PostgreSQL may take to publish a backend's transaction counts (pg_stat_database).
STATS_FLUSH_S = 1.5
WORKER_START_TIMEOUT_S = 60.0
WORKER_STOP_TIMEOUT_S = 15.0
# The statuses a promotion goes through on the way, in order: the latency breakdown.
STEPS = (
    PromotionStatus.QUEUED,
    PromotionStatus.APPLYING_CONFIGURATION,
    PromotionStatus.RESTARTING,
    PromotionStatus.SUCCEEDED,
)


CPU_LABELS = {
    "requester": "this process (requests, relay)",
    "workers": "the workers together",
    "database": "PostgreSQL (this run's database)",
    "broker": "RabbitMQ (all of it)",
}


class BenchError(Exception):
    """The run cannot go on; the message says why."""


@dataclass(frozen=True)
class Parameters:
    integrations: int
    workers: int
    concurrency: int
    clients: int
    messages: int


@dataclass
class Result:
    parameters: Parameters
    rabbitmq_version: str
    postgresql_version: str
    baseline_publishes_per_s: float
    promotions_per_s: float
    ratio: float  # promotions/s divided by baseline publishes/s
    latency_median_ms: float  # promote (requested_at) -> SUCCEEDED (finished_at)
    latency_p95_ms: float
    elapsed_s: float  # the first request -> the last promotion SUCCEEDED
    requests_s: float  # how long the M promote calls (each with its commit) took
    # Median time of each step, e.g. "QUEUED -> APPLYING_CONFIGURATION": from the promotion
    # event of one status to the next.
    step_median_ms: dict[str, float] = field(default_factory=dict)
    # CPU time per promotion while they ran (None where it cannot be read): "workers" (all
    # together), "requester" (this process: the promote requests, its outbox relay, the
    # polling), "database" (the server processes of the run's database), "broker" (the whole
    # RabbitMQ on this machine, whatever else uses it included).
    cpu_ms_per_promotion: dict[str, float | None] = field(default_factory=dict)
    outbox_rows_per_promotion: float = 0.0
    # Transactions the run's database committed or rolled back, per promotion, all processes
    # together (supervision rounds meanwhile included): a count, which does not move with the
    # machine's speed as CPU times do.
    transactions_per_promotion: float | None = None
    # How busy the machine's CPUs were while the promotions ran, whatever ran on them (other
    # users of the machine included): near 100, the machine was the limit.
    machine_cpu_busy_pct: float | None = None
    cpus: int = field(default_factory=lambda: os.cpu_count() or 0)
    # A raw publish -> consume -> publish -> consume round trip (persistent messages, quorum
    # queues, as the outbox and the workers use them), median, measured in the same run; and
    # the promotion's median latency against it.
    round_trip_median_ms: float = 0.0
    latency_to_round_trip: float = 0.0


# ---- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.promotions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--amqp-url",
        default=os.environ.get("PROMENADE_TEST_AMQP_URL") or DEFAULT_AMQP_URL,
        help="the broker; the run works in a virtual host of its own on it",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PROMENADE_TEST_DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="the PostgreSQL server; the run works in a database of its own on it",
    )
    parser.add_argument(
        "-n", "--messages", type=_positive, default=2000, help="baseline publishes (2000)"
    )
    parser.add_argument(
        "-m", "--integrations", type=_positive, default=50, help="promotions, one each (50)"
    )
    parser.add_argument("--workers", type=_positive, default=2, help="worker processes (2)")
    parser.add_argument(
        "--concurrency", type=_positive, default=4, help="changes at once per worker (4)"
    )
    parser.add_argument(
        "--clients",
        type=_positive,
        default=1,
        help="promote requests in flight at once (1: one after the other)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for each phase (600)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the workers under cProfile and profile the promote phase of this process; "
        "the statistics go to DIR (worker-<n>.prof, requester.prof). Slows everything down.",
    )
    return parser.parse_args(argv)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    parameters = Parameters(
        integrations=args.integrations,
        workers=args.workers,
        concurrency=args.concurrency,
        clients=args.clients,
        messages=args.messages,
    )
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    # SIGTERM ends the run the way Ctrl-C does: through the cleanup.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.ExitStack() as cleanup:
            # Callbacks run last registered first: the workers stop, then the database and
            # the virtual host go, then the scratch directory (the workers' logs).
            scratch = Path(tempfile.mkdtemp(prefix="promenade-bench-"))
            cleanup.callback(shutil.rmtree, scratch, ignore_errors=True)
            amqp_url = cleanup.enter_context(virtual_host(args.amqp_url))
            database_url = cleanup.enter_context(database(args.database_url))
            workers = cleanup.enter_context(worker_processes(scratch))
            # Runs before the rest of the cleanup: a second Ctrl-C cannot cut it short.
            cleanup.callback(_ignore_interrupts)
            _progress(
                f"vhost {urlsplit(amqp_url).path[1:]}, database {make_url(database_url).database}"
            )
            result = asyncio.run(
                run(
                    parameters,
                    amqp_url,
                    database_url,
                    workers,
                    timeout_s=args.timeout,
                    profile_dir=args.profile,
                )
            )
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped and removed", file=sys.stderr)
        raise SystemExit(130) from None
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.json:
        print(json.dumps(asdict(result), indent=2))
    else:
        print(table(result))


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# ---- what the run creates, and removes ------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    command = shutil.which("rabbitmqctl")
    if command is None:
        raise BenchError("rabbitmqctl is not on PATH: it creates the run's virtual host")
    result = subprocess.run(
        [command, "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise BenchError(f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}")
    return result.stdout


@contextlib.contextmanager
def virtual_host(server_url: str) -> Iterator[str]:
    """A virtual host of the run's own on the broker; its URL. Deleted afterwards."""
    vhost = f"promenade-bench-{secrets.token_hex(4)}"
    parts = urlsplit(server_url)
    try:
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
    finally:
        try:
            rabbitmqctl("delete_vhost", vhost)
        except (BenchError, subprocess.TimeoutExpired) as exc:
            _progress(f"could not delete the virtual host {vhost}: {exc}")


@contextlib.contextmanager
def database(server_url: str) -> Iterator[str]:
    """A database of the run's own on the server, migrated to head; its URL. Dropped
    afterwards (WITH FORCE: connections left open do not keep it)."""
    server_url = async_database_url(server_url)
    if not server_url.startswith("postgresql"):
        raise BenchError("the benchmark runs on PostgreSQL: give a postgresql:// URL")
    name = f"promenade_bench_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)

    # Set once CREATE DATABASE is sent: from then on there may be a database to drop.
    sent = False

    async def admin(statement: str) -> None:
        nonlocal sent
        engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
        try:
            async with engine.connect() as connection:
                sent = True
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    async def create() -> None:
        await admin(f'CREATE DATABASE "{name}"')
        engine = create_engine(url)
        try:
            await migrate.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        try:
            asyncio.run(create())
        except (OSError, SQLAlchemyError) as exc:
            raise BenchError(f"cannot create a database on {server_url}: {exc}") from exc
        yield url
    finally:
        try:
            if sent:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        except (OSError, SQLAlchemyError) as exc:
            _progress(f"could not drop the database {name}: {exc}")


class WorkerProcesses:
    """The benchmark's worker processes, each in a session of its own (a Ctrl-C in the
    terminal reaches the benchmark only, which stops them in order)."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def start(
        self,
        count: int,
        *,
        concurrency: int,
        env: dict[str, str],
        profile_dir: Path | None = None,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}
        for index in range(count):
            log_path = self._scratch / f"worker-{index}.log"
            command = [sys.executable, "-m", "bench.worker", "--concurrency", str(concurrency)]
            if profile_dir is not None:
                command += ["--profile", str(profile_dir.resolve() / f"worker-{index}.prof")]
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command,
                    env={**base, "PROMENADE_DATA_DIR": str(self._scratch), **env},
                    cwd=REPOSITORY,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.processes.append(process)
            self.logs.append(log_path)

    async def wait_ready(self, timeout_s: float = WORKER_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        for process, log_path in zip(self.processes, self.logs, strict=True):
            while WORKER_READY not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise BenchError(
                        f"worker {process.pid} did not start "
                        f"(exit code {process.returncode}):\n{self.tail(log_path)}"
                    )
                await asyncio.sleep(0.05)

    def check_alive(self) -> None:
        for process, log_path in zip(self.processes, self.logs, strict=True):
            if process.poll() is not None:
                raise BenchError(
                    f"worker {process.pid} exited with {process.returncode}:\n{self.tail(log_path)}"
                )

    def errors(self) -> str:
        """What the workers logged (warnings and errors), for a run that went wrong."""
        return "\n".join(f"--- {log}\n{self.tail(log)}" for log in self.logs)

    @staticmethod
    def tail(path: Path, lines: int = 40) -> str:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (they drain), then SIGKILL whoever is still there after the grace period."""
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
        for process in self.processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def worker_processes(scratch: Path) -> Iterator[WorkerProcesses]:
    workers = WorkerProcesses(scratch)
    try:
        yield workers
    finally:
        workers.stop()


# ---- the measurements -----------------------------------------------------------------------


@dataclass
class Context:
    """What the phases of a run share."""

    parameters: Parameters
    sessions: SessionFactory
    box: SecretBox
    relay: OutboxRelay
    workers: WorkerProcesses
    timeout_s: float
    profile_dir: Path | None


async def run(
    parameters: Parameters,
    amqp_url: str,
    database_url: str,
    workers: WorkerProcesses,
    *,
    timeout_s: float,
    profile_dir: Path | None,
) -> Result:
    _progress(f"baseline: {parameters.messages} confirmed persistent publishes")
    rabbitmq_version, baseline = await measure_baseline(amqp_url, parameters.messages)
    secret_key = Fernet.generate_key().decode()
    workers.start(
        parameters.workers,
        concurrency=parameters.concurrency,
        env={
            "PROMENADE_DATABASE_URL": database_url,
            "PROMENADE_AMQP_URL": amqp_url,
            "PROMENADE_SECRET_KEY": secret_key,
        },
        profile_dir=profile_dir,
    )
    engine = create_engine(database_url)
    bus = RabbitBus(amqp_url)
    try:
        sessions = create_session_factory(engine)
        _progress(f"setup: {parameters.integrations} integrations")
        world = await set_up(sessions, parameters.integrations)
        await workers.wait_ready()
        await bus.connect()
        relay = OutboxRelay(sessions, bus)
        relaying = asyncio.create_task(relay.run())
        context = Context(
            parameters=parameters,
            sessions=sessions,
            box=SecretBox(secret_key),
            relay=relay,
            workers=workers,
            timeout_s=timeout_s,
            profile_dir=profile_dir,
        )
        try:
            _progress("deploying each to Development")
            await deploy_all(context, world)
            await wait_for(
                lambda: deployments_active(context, world),
                timeout_s,
                "every integration ACTIVE in Development",
            )
            _progress("promoting each to Production")
            result = await measure_promotions(context, world)
        finally:
            await relay.stop()
            await relaying
        result.rabbitmq_version = rabbitmq_version
        result.postgresql_version = await server_version(engine)
        result.baseline_publishes_per_s = baseline
        result.ratio = result.promotions_per_s / baseline
        result.round_trip_median_ms = await measure_round_trip(amqp_url, ROUND_TRIPS) * 1000
        result.latency_to_round_trip = result.latency_median_ms / result.round_trip_median_ms
        return result
    finally:
        await bus.close()
        await engine.dispose()


async def measure_baseline(amqp_url: str, messages: int) -> tuple[str, float]:
    """The broker's version, and how many persistent messages per second one publisher gets
    into a durable quorum queue when it waits for each confirm before the next publish."""
    try:
        connection = await aio_pika.connect(amqp_url, timeout=10)
    except (OSError, aiormq.exceptions.AMQPError) as exc:
        raise BenchError(f"cannot connect to RabbitMQ: {exc!r}") from exc
    try:
        version = "?"
        if connection.transport is not None:
            raw = connection.transport.connection.server_properties.get("version", b"?")
            version = raw.decode() if isinstance(raw, bytes) else str(raw)
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            BASELINE_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def publish(count: int) -> None:
            for index in range(count):
                confirmation = await channel.default_exchange.publish(
                    aio_pika.Message(
                        BASELINE_BODY,
                        message_id=str(index),
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=BASELINE_QUEUE,
                    mandatory=True,
                )
                if not isinstance(confirmation, aiormq.spec.Basic.Ack):
                    raise BenchError(f"the broker did not confirm a publish: {confirmation!r}")

        await publish(BASELINE_WARMUP)
        started = time.perf_counter()
        await publish(messages)
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
        return version, messages / elapsed
    finally:
        await connection.close()


async def measure_round_trip(amqp_url: str, rounds: int) -> float:
    """The median seconds of a raw round trip, one at a time: a confirmed persistent publish
    to a quorum queue, a consumer that takes it and publishes (confirmed) to a second one, and
    a consumer there that takes the reply: what a command and its event cost at the least."""
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        publisher = await connection.channel(publisher_confirms=True)
        relay = await connection.channel(publisher_confirms=True)
        request_name, reply_name = ROUND_TRIP_QUEUES
        requests, replies = [
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            for channel, name in ((relay, request_name), (publisher, reply_name))
        ]
        arrived: asyncio.Queue[float] = asyncio.Queue()

        def message(body: bytes) -> aio_pika.Message:
            return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)

        async def answer(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            await relay.default_exchange.publish(message(incoming.body), routing_key=reply_name)
            await incoming.ack()

        async def received(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            await incoming.ack()
            arrived.put_nowait(time.perf_counter())

        await requests.consume(answer)
        await replies.consume(received)
        times = []
        for index in range(rounds + 20):  # the first 20 unmeasured
            started = time.perf_counter()
            await publisher.default_exchange.publish(
                message(BASELINE_BODY), routing_key=request_name
            )
            done = await asyncio.wait_for(arrived.get(), 10)
            if index >= 20:
                times.append(done - started)
        await requests.delete(if_unused=False, if_empty=False)
        await replies.delete(if_unused=False, if_empty=False)
        return statistics.median(times)
    finally:
        await connection.close()


async def server_version(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        version = (await connection.execute(text("SHOW server_version"))).scalar_one()
    return str(version).split()[0]


@dataclass(frozen=True)
class World:
    actor: User
    development_id: str
    production_id: str
    integration_ids: list[str]


async def set_up(sessions: SessionFactory, count: int) -> World:
    """Through the services: a user, an organization (which starts with Development ->
    Production), a project, and ``count`` integrations with a build each."""
    async with session_scope(sessions) as session:
        booted = await bootstrap(
            session, email="bench@promenade.test", name="Bench", organization_slug="bench"
        )
        assert booted.organization is not None
        project = await create_project(
            session, actor=booted.user, organization_id=booted.organization.id, name="Bench"
        )
        development_id, production_id = await stage_environment_ids(session, project.pipeline_id)
        integration_ids = []
        for index in range(count):
            integration = await create_integration(
                session, actor=booted.user, project_id=project.id, name=f"Integration {index}"
            )
            await create_build(
                session,
                actor=booted.user,
                integration_id=integration.id,
                version="1.0.0",
                artifact="noop",
            )
            integration_ids.append(integration.id)
    return World(
        actor=booted.user,
        development_id=development_id,
        production_id=production_id,
        integration_ids=integration_ids,
    )


async def deploy_all(context: Context, world: World) -> None:
    for integration_id in world.integration_ids:
        async with session_scope(context.sessions) as session:
            build = (
                await session.exec(select(Build).where(Build.integration_id == integration_id))
            ).one()
            await deploy(
                session,
                actor=world.actor,
                box=context.box,
                integration_id=integration_id,
                build_id=build.id,
                environment_id=world.development_id,
            )
        context.relay.wake()


async def deployments_active(context: Context, world: World) -> bool:
    context.workers.check_alive()
    async with context.sessions() as session:
        rows = (
            await session.exec(
                select(Deployment.status, Deployment.last_error).where(
                    Deployment.environment_id == world.development_id
                )
            )
        ).all()
    failed = [error for status, error in rows if status is DeploymentStatus.ERROR]
    if failed:
        raise BenchError(f"a deploy to Development failed: {failed[0]}")
    active = sum(status is DeploymentStatus.ACTIVE for status, _ in rows)
    return active == len(world.integration_ids)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(POLL_INTERVAL_S)


async def measure_promotions(context: Context, world: World) -> Result:
    """Promote every integration to Production and wait until each promotion SUCCEEDED."""
    pending = list(world.integration_ids)
    sessions = context.sessions

    async def client() -> None:
        # Each request as the API runs one: its own transaction, then the relay is woken.
        while pending:
            integration_id = pending.pop(0)
            async with session_scope(sessions) as session:
                await promote(
                    session,
                    actor=world.actor,
                    box=context.box,
                    request=PromotionRequest(
                        integration_id=integration_id,
                        source_environment_id=world.development_id,
                        target_environment_id=world.production_id,
                    ),
                )
            context.relay.wake()

    async def finished() -> bool:
        context.workers.check_alive()
        async with sessions() as session:
            counts = dict(
                (
                    await session.exec(
                        select(Promotion.status, func.count())
                        .where(Promotion.target_environment_id == world.production_id)
                        .group_by(col(Promotion.status))
                    )
                ).all()
            )
            if counts.get(PromotionStatus.FAILED):
                error = (
                    await session.exec(
                        select(Promotion.error).where(Promotion.status == PromotionStatus.FAILED)
                    )
                ).first()
                raise BenchError(f"a promotion FAILED: {error}\n{context.workers.errors()}")
        return counts.get(PromotionStatus.SUCCEEDED, 0) == len(world.integration_ids)

    async with sessions() as session:
        outbox_before = await _outbox_rows(session)
        meter = CpuMeter(context.workers, await _backend_pids(session))
    transactions_before = await _transactions(sessions)
    profiler = cProfile.Profile() if context.profile_dir is not None else None
    if profiler is not None:
        profiler.enable()
    started_at = utcnow()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(context.parameters.clients)))
    requests_s = time.perf_counter() - started
    await wait_for(finished, context.timeout_s, "every promotion SUCCEEDED")
    if profiler is not None and context.profile_dir is not None:
        profiler.disable()
        profiler.dump_stats(context.profile_dir / "requester.prof")

    async with sessions() as session:
        cpu = meter.spent(await _backend_pids(session))
        promotions = (
            await session.exec(
                select(Promotion).where(Promotion.target_environment_id == world.production_id)
            )
        ).all()
        events = (
            await session.exec(
                select(PromotionEvent).where(
                    col(PromotionEvent.promotion_id).in_([p.id for p in promotions])
                )
            )
        ).all()
        outbox_rows = await _outbox_rows(session) - outbox_before
    transactions_after = await _transactions(sessions)
    count = len(promotions)
    latencies = [_ms(p.requested_at, p.finished_at) for p in promotions]
    last = max(_finished(p) for p in promotions)
    elapsed_s = (last - started_at).total_seconds()
    return Result(
        parameters=context.parameters,
        rabbitmq_version="",
        postgresql_version="",
        baseline_publishes_per_s=0.0,
        promotions_per_s=count / elapsed_s,
        ratio=0.0,
        latency_median_ms=statistics.median(latencies),
        latency_p95_ms=percentile(latencies, 95),
        elapsed_s=elapsed_s,
        requests_s=requests_s,
        step_median_ms=step_medians(events),
        cpu_ms_per_promotion={
            name: None if seconds is None else seconds * 1000 / count
            for name, seconds in cpu.items()
        },
        outbox_rows_per_promotion=outbox_rows / count,
        transactions_per_promotion=(transactions_after - transactions_before) / count,
        machine_cpu_busy_pct=meter.machine_busy_pct(),
    )


async def _outbox_rows(session: AsyncSession) -> int:
    return (await session.exec(select(func.count()).select_from(OutboxMessage))).one()


async def _transactions(sessions: SessionFactory) -> int:
    """The database's transactions so far (pg_stat_database). The server publishes each
    backend's counts within about a second of its transactions: read after a pause."""
    await asyncio.sleep(STATS_FLUSH_S)
    async with sessions() as session:
        connection = await session.connection()
        result = await connection.execute(
            text(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                " WHERE datname = current_database()"
            )
        )
        return int(result.scalar_one())


async def _backend_pids(session: AsyncSession) -> list[int]:
    """The server processes of the run's database (on this machine: the pids are in /proc)."""
    connection = await session.connection()
    result = await connection.execute(
        text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    )
    return [int(pid) for pid in result.scalars()]


# ---- CPU time ---------------------------------------------------------------------------------


def process_cpu(pids: Sequence[int]) -> dict[int, float] | None:
    """User and system CPU seconds of each process that is still there, from Linux's /proc;
    None where there is no /proc."""
    if not Path("/proc/self/stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # After the command name in parentheses: state is field 3, utime 14, stime 15.
        fields = stat.rsplit(")", 1)[1].split()
        seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM on this machine (beam.smp), if it runs here."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if entry.read_text().strip() == "beam.smp":
                pids.append(int(entry.parent.name))
    return pids


def machine_cpu() -> tuple[int, int] | None:
    """Busy and total CPU time of the machine so far, in ticks (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal ...
    ticks = [int(value) for value in first[1:9]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU time spent from its creation to ``spent()``, by part of the system. The database's
    share counts the server processes of the run's database only (connections that closed
    meanwhile are missed); the broker's is the whole broker, other users of it included."""

    def __init__(self, workers: WorkerProcesses, backends: Sequence[int]) -> None:
        self._worker_pids = [p.pid for p in workers.processes]
        self._broker_pids = broker_pids()
        self._before = self._read(backends)
        self._own_before = own_cpu_seconds()
        self._machine_before = machine_cpu()

    def _read(self, backends: Sequence[int]) -> dict[str, dict[int, float] | None]:
        return {
            "workers": process_cpu(self._worker_pids),
            "database": process_cpu(backends),
            "broker": process_cpu(self._broker_pids) if self._broker_pids else None,
        }

    def spent(self, backends: Sequence[int]) -> dict[str, float | None]:
        spent: dict[str, float | None] = {"requester": own_cpu_seconds() - self._own_before}
        for name, now in self._read(backends).items():
            before = self._before[name]
            if now is None or before is None:
                spent[name] = None
            else:
                spent[name] = sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())
        return spent

    def machine_busy_pct(self) -> float | None:
        """How busy the machine's CPUs were meanwhile, all processes counted (100: saturated)."""
        now = machine_cpu()
        if now is None or self._machine_before is None:
            return None
        busy = now[0] - self._machine_before[0]
        total = now[1] - self._machine_before[1]
        return 100.0 * busy / total if total else None


def _finished(promotion: Promotion) -> datetime:
    assert promotion.finished_at is not None
    return promotion.finished_at


def _ms(start: datetime, end: datetime | None) -> float:
    assert end is not None
    return (end - start).total_seconds() * 1000


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank: the smallest value that ``pct`` percent of the values are at or below."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)) - 1, 0)]


def step_medians(events: Sequence[PromotionEvent]) -> dict[str, float]:
    """The median time of each step, from one status's event to the next one's."""
    at: dict[str, dict[PromotionStatus, datetime]] = defaultdict(dict)
    for event in events:
        at[event.promotion_id].setdefault(event.status, event.at)
    medians = {}
    for before, after in itertools.pairwise(STEPS):
        spans = [
            _ms(times[before], times[after])
            for times in at.values()
            if before in times and after in times
        ]
        if spans:
            medians[f"{before.value} -> {after.value}"] = statistics.median(spans)
    return medians


# ---- output -----------------------------------------------------------------------------------


def table(result: Result) -> str:
    p = result.parameters
    rows = [
        ("baseline publishes/s", f"{result.baseline_publishes_per_s:,.0f}"),
        ("promotions/s", f"{result.promotions_per_s:,.1f}"),
        ("ratio promotions/s / publishes/s", f"{result.ratio:.4f}"),
        ("promote -> SUCCEEDED median", f"{result.latency_median_ms:,.0f} ms"),
        ("promote -> SUCCEEDED p95", f"{result.latency_p95_ms:,.0f} ms"),
        ("raw publish -> consume -> publish -> consume", f"{result.round_trip_median_ms:.1f} ms"),
        ("promote -> SUCCEEDED median / raw round trip", f"{result.latency_to_round_trip:.1f}x"),
        *((f"  median {step}", f"{ms:,.0f} ms") for step, ms in result.step_median_ms.items()),
        ("elapsed (first request -> last SUCCEEDED)", f"{result.elapsed_s:.2f} s"),
        ("the M promote requests took", f"{result.requests_s:.2f} s"),
        *(
            (f"CPU per promotion: {CPU_LABELS[name]}", "n/a" if ms is None else f"{ms:.1f} ms")
            for name, ms in result.cpu_ms_per_promotion.items()
        ),
        ("outbox rows per promotion", f"{result.outbox_rows_per_promotion:.1f}"),
        (
            "database transactions per promotion",
            "n/a"
            if result.transactions_per_promotion is None
            else f"{result.transactions_per_promotion:.1f}",
        ),
        (
            f"machine CPU busy meanwhile ({result.cpus} CPUs)",
            "n/a"
            if result.machine_cpu_busy_pct is None
            else f"{result.machine_cpu_busy_pct:.0f} %",
        ),
        (
            "parameters",
            f"M={p.integrations} integrations, {p.workers} workers x concurrency "
            f"{p.concurrency}, {p.clients} client(s), baseline N={p.messages}",
        ),
        (
            "servers",
            f"RabbitMQ {result.rabbitmq_version}, PostgreSQL {result.postgresql_version}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


if __name__ == "__main__":
    main()
