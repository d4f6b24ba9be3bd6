"""RabbitMQ for the tests that run Promenade's processes: the machine's broker
(PROMENADE_TEST_AMQP_URL, required: there is no default) and virtual hosts of the tests' own
on it (``rabbitmqctl add_vhost``), so that the queues every organization's ``local`` data plane
uses are theirs alone."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import pytest

AMQP_HELP = (
    "These tests need RabbitMQ and its rabbitmqctl on this machine (they get virtual hosts of "
    "their own). Start the broker (on the project's machines: rabbitmq-server -detached) and "
    "set PROMENADE_TEST_AMQP_URL, e.g. PROMENADE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"
)


async def _probe(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    await connection.close()


def probe_amqp(url: str) -> None:
    """Connect once; raises when the broker does not answer."""
    # In a thread of its own: a fixture may be set up from within a running event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _probe(url)).result()


def amqp_server_url() -> str:
    """The broker's URL, once it answers; fails the test with what to start when it does not."""
    url = os.environ.get("PROMENADE_TEST_AMQP_URL")
    if not url:
        pytest.fail(f"PROMENADE_TEST_AMQP_URL is not set. {AMQP_HELP}", pytrace=False)
    try:
        probe_amqp(url)
    except Exception as exc:
        pytest.fail(f"cannot connect to {url} ({exc!r}). {AMQP_HELP}", pytrace=False)
    return url


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` against the machine's broker; fail the test with what to do when
    it cannot."""
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail(f"rabbitmqctl is not on PATH. {AMQP_HELP}", pytrace=False)
    result = subprocess.run(
        [command, "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}. {AMQP_HELP}",
            pytrace=False,
        )
    return result.stdout


def url_with_vhost(url: str, vhost: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))


@contextmanager
def virtual_host(server_url: str, prefix: str = "promenade-test") -> Iterator[str]:
    """The URL of a new virtual host on the broker of ``server_url``; deleted afterwards."""
    vhost = f"{prefix}-{secrets.token_hex(4)}"
    user = urlsplit(server_url).username or "guest"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield url_with_vhost(server_url, vhost)
    finally:
        rabbitmqctl("delete_vhost", vhost)
