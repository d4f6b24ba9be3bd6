"""Fixtures of the messaging tests: a real RabbitMQ broker, both bus implementations, a data plane
name of the test's own, and a proxy that takes the broker away and brings it back.

RabbitMQ comes from PROMENADE_TEST_AMQP_URL; when unset, from testcontainers; when no container
engine answers either, the tests fail with a message that says what to start.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import aio_pika
import pytest

from app.messaging.bus import Bus, command_queue, dead_letter_queue
from app.messaging.inprocess import InProcessBus
from app.messaging.rabbit import RabbitBus
from tests.support.tcp_proxy import TcpProxy

AMQP_HELP = (
    "These tests need RabbitMQ. Start one and set PROMENADE_TEST_AMQP_URL "
    "(e.g. amqp://guest:guest@127.0.0.1:5672/), or make a Docker engine reachable for "
    "testcontainers. On the project's machines: rabbitmq-server -detached"
)

# Short pauses, so that tests of retries and reconnections take fractions of a second.
TEST_RETRY_DELAY = 0.01
TEST_RECONNECT_INTERVAL = 0.2


async def _probe(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    await connection.close()


def _container_url() -> Iterator[str]:
    failure = None
    try:
        # testcontainers warns about its own deprecated parts on import and start; the suite
        # turns warnings into errors.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.community.rabbitmq import RabbitMqContainer

            container = RabbitMqContainer("rabbitmq:3.13-alpine")
            container.start()
    except Exception as exc:  # no Docker engine, no image: say what to start instead
        failure = f"{AMQP_HELP} ({type(exc).__name__}: {exc})"
    if failure is not None:
        # The Docker client leaves its socket to the garbage collector; collect it here, where
        # its ResourceWarning does not turn into an error of the whole session.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.fail(failure, pytrace=False)
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(container.port)
        yield f"amqp://{container.username}:{container.password}@{host}:{port}/"
    finally:
        container.stop()


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    url = os.environ.get("PROMENADE_TEST_AMQP_URL")
    urls = iter([url]) if url else _container_url()
    for candidate in urls:
        try:
            # In a thread of its own: the fixture may be set up from within a running loop.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, _probe(candidate)).result()
        except Exception as exc:
            pytest.fail(f"{AMQP_HELP} (cannot connect: {exc!r})", pytrace=False)
        yield candidate


@pytest.fixture
def data_plane() -> str:
    """A data plane name of the test's own: its queues are the test's alone."""
    return f"test-{uuid.uuid4().hex[:12]}"


async def delete_queues(url: str, data_plane: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    try:
        channel = await connection.channel()
        for name in (command_queue(data_plane), dead_letter_queue(data_plane)):
            await channel.queue_delete(name)
    finally:
        await connection.close()


class Buses:
    """Opens buses of one kind for a test and closes them after it. RabbitMQ: each ``open()``
    is a new connection. In-process: there is one bus per process, so ``open()`` (re)connects
    that one."""

    def __init__(self, kind: str, amqp_url: str | None) -> None:
        self.kind = kind
        self.amqp_url = amqp_url
        self._opened: list[Bus] = []
        self._inprocess = InProcessBus(retry_delay=TEST_RETRY_DELAY)

    async def open(self, url: str | None = None) -> Bus:
        bus: Bus
        if self.kind == "rabbit":
            assert self.amqp_url is not None
            bus = RabbitBus(
                url or self.amqp_url,
                retry_delay=TEST_RETRY_DELAY,
                reconnect_interval=TEST_RECONNECT_INTERVAL,
            )
        else:
            bus = self._inprocess
        await bus.connect()
        self._opened.append(bus)
        return bus

    async def close_all(self) -> None:
        for bus in reversed(self._opened):
            await bus.close()


@pytest.fixture(params=["rabbit", "inprocess"])
async def buses(request: pytest.FixtureRequest, data_plane: str) -> AsyncIterator[Buses]:
    url: str | None = request.getfixturevalue("amqp_url") if request.param == "rabbit" else None
    opened = Buses(request.param, url)
    try:
        yield opened
    finally:
        await opened.close_all()
        if url is not None:
            await delete_queues(url, data_plane)


@pytest.fixture
async def bus(buses: Buses) -> Bus:
    return await buses.open()


@pytest.fixture
async def rabbit_queues(amqp_url: str, data_plane: str) -> AsyncIterator[None]:
    """For tests that use RabbitMQ directly: deletes the data plane's queues afterwards."""
    yield
    await delete_queues(amqp_url, data_plane)


# ---- a broker that goes away ----------------------------------------------------------------


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(amqp_url)
    try:
        yield proxy
    finally:
        await proxy.down()
