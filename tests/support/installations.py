"""Scaled installations of Promenade as processes, on PostgreSQL and RabbitMQ: the end-to-end
tests' cluster (the API and the gateway; the tests start the workers), and the live tests'
replicas (``promenade migrate``, several API processes and a worker). Everything one started is
stopped afterwards, the integrations' processes included."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from app.db import create_engine, create_session_factory, session_scope
from app.services.bootstrap import bootstrap
from tests.processes import (
    STARTUP_TIMEOUT_S,
    WORKER_READY,
    PromenadeProcess,
    free_port,
    instance_processes,
    kill_instances,
    run_promenade,
    running_promenade,
    start_gateway,
    start_promenade,
    start_worker,
    wait_for_gateway,
)
from tests.support.docker import docker_host, remove_installation_containers

ADMIN_EMAIL = "admin@e2e.test"


# ---- the end-to-end tests' cluster ---------------------------------------------------------


@dataclass
class Cluster:
    """A scaled installation: the API and the gateway run; workers are started by the tests."""

    data_dir: Path
    # PROMENADE_* settings every process of the installation shares.
    env: dict[str, str]
    api_url: str
    gateway_url: str
    token: str
    workers: list[PromenadeProcess] = field(default_factory=list)

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"

    def start_worker(
        self,
        *,
        data_plane: str | list[str] = "local",
        concurrency: int = 4,
        pause_after_step: str | None = None,
    ) -> PromenadeProcess:
        """A worker of the data plane(s), each named as ``--data-plane`` takes it."""
        worker = start_worker(
            self.data_dir,
            self.worker_env,
            data_plane=data_plane,
            concurrency=concurrency,
            pause_after_step=pause_after_step,
        )
        self.workers.append(worker)
        return worker

    @property
    def worker_env(self) -> dict[str, str]:
        """The installation's settings, and the tests' Docker Engine for CONTAINER planes."""
        return {**self.env, "DOCKER_HOST": docker_host()}

    def start_workers(
        self, data_planes: list[str], *, concurrency: int = 4
    ) -> list[PromenadeProcess]:
        """A worker for each data plane named (a name may repeat), started at once."""
        started = [
            start_worker(
                self.data_dir, self.worker_env, data_plane=name, concurrency=concurrency, wait=False
            )
            for name in data_planes
        ]
        self.workers.extend(started)
        for worker in started:
            worker.wait_for_log(WORKER_READY)
        return started

    def stop_workers(self) -> None:
        """SIGTERM to every worker still running, at once; SIGKILL to any that does not
        drain in time."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        while self.workers:
            self.workers.pop().stop()

    def clean_up(self) -> None:
        """Stop the workers, kill every integration process they started (and check that none
        is left), remove the installation's containers."""
        self.stop_workers()
        kill_instances(self.runtime_dir)
        remove_installation_containers(self.data_dir)
        left = instance_processes(self.runtime_dir)
        assert not left, f"integration processes left running: {left}"


async def admin_token(database_url: str, email: str = ADMIN_EMAIL) -> str:
    """The admin's API token (what ``promenade bootstrap`` does, without a process start), or
    with ``email`` a new token of that user's (an existing member keeps their role)."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            name = "Admin" if email == ADMIN_EMAIL else None
            result = await bootstrap(session, email=email, name=name)
        return result.token
    finally:
        await engine.dispose()


@contextmanager
def running_cluster(data_dir: Path, database_url: str, amqp_url: str) -> Iterator[Cluster]:
    """API and gateway on the database and broker given; everything it started is stopped
    afterwards, the integrations' processes included (and checked to be gone)."""
    gateway_port = free_port()
    env = {
        "PROMENADE_DATABASE_URL": database_url,
        "PROMENADE_AMQP_URL": amqp_url,
        "PROMENADE_SECRET_KEY": Fernet.generate_key().decode(),
        "PROMENADE_GATEWAY_PORT": str(gateway_port),
    }
    token = asyncio.run(admin_token(database_url))
    # Both start at once: most of a start is importing Python modules.
    gateway = start_gateway(data_dir, env, gateway_port, wait=False)
    cluster: Cluster | None = None
    try:
        with running_promenade("api", data_dir, env) as api:
            wait_for_gateway(gateway, gateway_port)
            cluster = Cluster(
                data_dir=data_dir,
                env=env,
                api_url=api.url,
                gateway_url=f"http://127.0.0.1:{gateway_port}",
                token=token,
            )
            yield cluster
    finally:
        if cluster is not None:
            cluster.stop_workers()
        gateway.stop()
        kill_instances(data_dir / "runtime")
        remove_installation_containers(data_dir)
    left = instance_processes(data_dir / "runtime")
    assert not left, f"integration processes left running: {left}"


# ---- the live tests' replicas --------------------------------------------------------------


@dataclass
class ApiProcess:
    process: PromenadeProcess
    url: str


@dataclass
class Scaled:
    data_dir: Path
    env: dict[str, str]  # the PROMENADE_* settings every process shares
    token: str  # the admin's, in the organization "replicas"
    apis: list[ApiProcess] = field(default_factory=list)
    workers: list[PromenadeProcess] = field(default_factory=list)


def start_api(data_dir: Path, env: dict[str, str]) -> ApiProcess:
    port = free_port()
    process = start_promenade(["api", "--port", str(port)], data_dir, env)
    return ApiProcess(process=process, url=f"http://127.0.0.1:{port}")


def wait_healthy(api: ApiProcess) -> None:
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


@contextmanager
def scaled_installation(
    data_dir: Path,
    database_url: str,
    amqp_url: str,
    *,
    replicas: int = 2,
    worker_env: Mapping[str, str] | None = None,
) -> Iterator[Scaled]:
    """``promenade migrate`` and ``bootstrap`` on the (empty) database, then ``replicas`` API
    processes and one worker (with ``worker_env`` besides the installation's settings), started
    at once; every process (and instance) stopped after."""
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
        scaled.workers.append(start_worker(data_dir, {**env, **(worker_env or {})}, wait=False))
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
