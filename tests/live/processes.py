"""A scaled installation for the live tests: its own PostgreSQL database and RabbitMQ virtual
host, ``promenade migrate``, API replicas and a worker started at once; all of it stopped and
removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import make_url, text

from app.db import create_engine
from tests.processes import (
    STARTUP_TIMEOUT_S,
    WORKER_READY,
    PromenadeProcess,
    free_port,
    kill_instances,
    run_promenade,
    start_promenade,
    start_worker,
)

RABBITMQ_HELP = (
    "The replica tests need RabbitMQ and its rabbitmqctl on this machine (the test gets a "
    "virtual host of its own): start the broker (rabbitmq-server -detached) and set "
    "PROMENADE_TEST_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/"
)


def rabbitmqctl(*args: str) -> None:
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail(f"rabbitmqctl is not on PATH. {RABBITMQ_HELP}", pytrace=False)
    result = subprocess.run(
        [command, "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}. {RABBITMQ_HELP}",
            pytrace=False,
        )


@contextlib.contextmanager
def rabbitmq_vhost(server_url: str) -> Iterator[str]:
    """The URL of a virtual host of its own on the broker of ``server_url``; deleted after."""
    vhost = f"promenade-live-{secrets.token_hex(4)}"
    user = urlsplit(server_url).username or "guest"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(urlsplit(server_url)._replace(path="/" + quote(vhost, safe="")))
    finally:
        rabbitmqctl("delete_vhost", vhost)


@dataclass
class Api:
    process: PromenadeProcess
    url: str


@dataclass
class Scaled:
    data_dir: Path
    env: dict[str, str]  # the PROMENADE_* settings every process shares
    token: str  # the admin's, in the organization "replicas"
    apis: list[Api] = field(default_factory=list)
    workers: list[PromenadeProcess] = field(default_factory=list)


def start_api(data_dir: Path, env: dict[str, str]) -> Api:
    port = free_port()
    process = start_promenade(["api", "--port", str(port)], data_dir, env)
    return Api(process=process, url=f"http://127.0.0.1:{port}")


def wait_healthy(api: Api) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if api.process.process.poll() is not None:
            pytest.fail(f"promenade api exited:\n{api.process.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{api.url}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        if time.monotonic() > deadline:
            pytest.fail(f"promenade api did not answer at {api.url}:\n{api.process.log()}")
        time.sleep(0.05)


@contextlib.contextmanager
def scaled_installation(
    data_dir: Path, database_url: str, amqp_url: str, *, replicas: int = 2
) -> Iterator[Scaled]:
    """``promenade migrate`` and ``bootstrap`` on the (empty) database, then ``replicas`` API
    processes and one worker, started at once; every process (and instance) stopped after."""
    env = {
        "PROMENADE_DATABASE_URL": database_url,
        "PROMENADE_AMQP_URL": amqp_url,
        "PROMENADE_GATEWAY_PORT": str(free_port()),
    }
    # Each command takes a second or more to start: what can run at once does.
    with ThreadPoolExecutor(1) as pool:
        secret_key = pool.submit(run_promenade, ["secret-key"], data_dir, env)
        run_promenade(["migrate"], data_dir, env)
        env["PROMENADE_SECRET_KEY"] = secret_key.result().strip()
    scaled = Scaled(data_dir=data_dir, env=env, token="")
    try:
        scaled.workers.append(start_worker(data_dir, env, wait=False))
        scaled.apis.extend(start_api(data_dir, env) for _ in range(replicas))
        output = run_promenade(
            ["bootstrap", "--email", "admin@replicas.test", "--org", "replicas"], data_dir, env
        )
        scaled.token = output.strip().splitlines()[-1]
        for api in scaled.apis:
            wait_healthy(api)
        for worker in scaled.workers:
            worker.wait_for_log(WORKER_READY)
        yield scaled
    finally:
        processes = [api.process for api in scaled.apis] + scaled.workers
        for process in processes:  # SIGTERM to all first: they drain at the same time
            if process.process.poll() is None:
                process.process.terminate()
        for process in processes:
            process.stop()
        kill_instances(data_dir / "runtime")


async def _execute(server_url: str, statement: str) -> None:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


@contextlib.contextmanager
def empty_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of ``server_url`` (``promenade migrate``
    is for the test to run); dropped afterwards."""
    name = f"promenade_live_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
