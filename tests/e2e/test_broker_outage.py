"""The broker goes away while promotions are requested, and comes back: none is lost.

The machine's shared RabbitMQ is never stopped: this module starts a RabbitMQ node of its own
(rabbitmq-server with its own node name, ports, data and log directories, Erlang cookie and no
plugins) and points the API and the worker at it. ``rabbitmqctl stop_app`` takes the broker
away (its listener closes and every connection drops, as when it stops) and ``start_app``
brings it back with its durable queues; killing the node outright and starting it again on the
same data directory is the harder variant.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import free_port
from tests.support.documents import RESTART
from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import Greeter, greeting, new_greeter
from tests.support.installations import Cluster, running_cluster
from tests.support.postgres import new_database
from tests.support.rabbitmq import probe_amqp

# The package's own scripts run as the calling user; /usr/sbin's wrappers switch to the
# rabbitmq user, who could not write this test's directories.
RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
START_TIMEOUT_S = 60.0
DEV_VALUES = {"GREETING": "Hello from Development", "API_KEY": "dev-key"}
OUTAGE_S = 3.0


def _tool(name: str) -> str:
    packaged = RABBITMQ_BIN / name
    if packaged.exists():
        return str(packaged)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: this test starts a RabbitMQ node of its own")
    return found


@dataclass
class PrivateBroker:
    """A RabbitMQ node of the test's own."""

    node: str
    url: str
    base: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the node (again, on the same data directory) and wait until AMQP answers."""
        with (self.base / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [_tool("rabbitmq-server")],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                probe_amqp(self.url)
                return
            except Exception as exc:
                if self.process is not None and self.process.poll() is not None:
                    pytest.fail(f"the private RabbitMQ node exited:\n{self.server_log()}")
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"the private RabbitMQ node did not answer ({exc!r}):\n{self.server_log()}"
                    )
                time.sleep(0.2)

    def server_log(self) -> str:
        return (self.base / "server.log").read_text(errors="replace")[-5000:]

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.node, "-q", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"rabbitmqctl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.wait_ready()

    def kill(self) -> None:
        """SIGKILL to the whole node (its Erlang VM and helpers)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired, AssertionError):
            self.ctl("stop")
            self.process.wait(timeout=30)
        self.kill()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    base = tmp_path_factory.mktemp("rabbitmq")
    home = base / "home"
    home.mkdir()
    cookie = home / ".erlang.cookie"
    cookie.write_text(secrets.token_hex(16))
    cookie.chmod(0o400)
    (base / "enabled_plugins").write_text("")
    (base / "rabbitmq-env.conf").write_text("")  # instead of /etc/rabbitmq/rabbitmq-env.conf
    port = free_port()
    (base / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"
    )
    node = f"promenade-test-{secrets.token_hex(3)}@localhost"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
        "HOME": str(home),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "ERL_CRASH_DUMP": str(base / "erl_crash.dump"),
    }
    private = PrivateBroker(
        node=node, url=f"amqp://guest:guest@127.0.0.1:{port}/", base=base, env=env
    )
    try:
        private.start()
        yield private
    finally:
        private.stop()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, broker: PrivateBroker
) -> Iterator[Cluster]:
    """An installation of the module's own, on the private node and a database of its own."""
    with (
        new_database(postgres_server_url) as database_url,
        running_cluster(tmp_path_factory.mktemp("e2e"), database_url, broker.url) as running,
    ):
        yield running


async def test_promotions_requested_while_the_broker_is_down_all_succeed(
    api: GraphQLClient, workers: Cluster, broker: PrivateBroker
) -> None:
    workers.start_worker()
    greeters = [await new_greeter(api, workers.gateway_url) for _ in range(3)]
    await asyncio.gather(*(g.deploy(DEV_VALUES) for g in greeters))

    broker.stop_app()
    try:
        promotions = await asyncio.gather(
            *(
                g.promote("Development", "Production", production_values(n))
                for n, g in enumerate(greeters)
            )
        )
        assert [p["__typename"] for p in promotions] == ["Promotion"] * 3, promotions
        development = await greeters[0].deployment("Development")
        await greeters[0].api.ok(RESTART, {"id": development["id"]})
        await asyncio.sleep(OUTAGE_S)
        # Recorded, waiting for the broker.
        for promotion, greeter in zip(promotions, greeters, strict=True):
            assert (await greeter.promotion(promotion["id"]))["status"] == "QUEUED"
    finally:
        broker.start_app()

    await assert_all_promoted(greeters, [p["id"] for p in promotions])
    restarted = await greeters[0].wait_revision("Development", 2, within=60)
    assert [r["node"]["cause"] for r in restarted["history"]["edges"]] == ["RESTART", "DEPLOY"]


async def test_commands_waiting_in_a_killed_broker_survive_its_restart(
    api: GraphQLClient, workers: Cluster, broker: PrivateBroker
) -> None:
    """Commands published while no worker runs wait in the durable queue; the node is killed
    and started again on its data directory; a worker then runs every one of them."""
    worker = workers.start_worker()
    greeters = [await new_greeter(api, workers.gateway_url) for _ in range(3)]
    await asyncio.gather(*(g.deploy(DEV_VALUES) for g in greeters))
    worker.stop()

    promotions = await asyncio.gather(
        *(
            g.promote("Development", "Production", production_values(n))
            for n, g in enumerate(greeters)
        )
    )
    assert [p["__typename"] for p in promotions] == ["Promotion"] * 3, promotions

    def queued() -> int:
        listing = broker.ctl("list_queues", "name", "messages")
        counts = dict(line.split("\t") for line in listing.splitlines() if "\t" in line)
        return int(counts.get("promenade.execute.local", "0"))

    deadline = time.monotonic() + 30
    while queued() < 3:  # published by the API's outbox relay, confirmed by the broker
        assert time.monotonic() < deadline, broker.ctl("list_queues", "name", "messages")
        await asyncio.sleep(0.2)

    broker.kill()
    broker.start()
    workers.start_worker()
    await assert_all_promoted(greeters, [p["id"] for p in promotions])


def production_values(n: int) -> dict[str, str]:
    return {"GREETING": f"Hello from Production {n}", "API_KEY": f"prod-key-{n}"}


async def assert_all_promoted(greeters: list[Greeter], promotion_ids: list[str]) -> None:
    finished = await asyncio.gather(
        *(g.wait_promotion(p, within=60) for g, p in zip(greeters, promotion_ids, strict=True))
    )
    assert [p["status"] for p in finished] == ["SUCCEEDED"] * len(greeters), finished
    for n, greeter in enumerate(greeters):
        production = await greeter.wait_revision("Production", 1)
        assert production["history"]["totalCount"] == 1
        live = await greeting(greeter.endpoint("prod"))
        assert live["greeting"] == production_values(n)["GREETING"]
