"""One API process holding many websocket subscribers of ``deploymentEvents``.

One run, against a ``promenade up`` of its own on a fresh data directory (SQLite, in-process
bus, a worker and a gateway, everything in one process; removed at the end):

1. the greeter is deployed to Development; a single subscriber (in this process) subscribes to
   ``deploymentEvents(environmentId: Development)`` and the deployment is restarted until it has
   seen --events events alone (the baseline of the baseline);
2. the server's RSS (VmRSS of /proc/<pid>/status) is read; --clients client processes open
   --subscribers websocket connections between them, each with the same subscription; once
   every one of them has received an event, the RSS is read again: memory per subscriber =
   the difference / --subscribers;
3. the deployment is restarted until --events more events were published (each restart
   announces IN_PROGRESS from the API's transaction and ACTIVE from the worker's). For each
   event, from its ``at`` (the time it was recorded, in the transaction that announces it)
   to the moment the single subscriber had it, and to the moment the last of the
   --subscribers had it: median and p99, and the ratio of the two for the same event.

Times are taken where the subscriber's task gets the message (``time.time()``, the clock of
the server too): the last subscriber's time includes the client processes' own work of
reading the messages of --subscribers / --clients connections each.

    python -m bench.subscribers [--subscribers 1000] [--events 20] [--clients 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parents[1]
GREETER = ROOT / "examples" / "greeter" / "app.py"
PROMENADE = str(Path(sys.executable).parent / "promenade")
PROTOCOL = Subprotocol("graphql-transport-ws")
# The greeter runs with the machine's Python: run as root, ``promenade up`` runs it as a user
# of its own, who may not reach this checkout's virtual environment (tests/processes.py).
INSTANCE_PYTHON = "/usr/bin/python3"
STARTUP_TIMEOUT_S = 60.0
# Connections a client process opens at once.
CONNECT_AT_ONCE = 50
DEPLOYMENT_EVENTS = """
subscription($environmentId: ID) {
    deploymentEvents(environmentId: $environmentId) {
        deploymentId status revision detail at
    }
}
"""


# ---- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    pid: int
    token: str
    data_dir: Path


def raise_open_files_limit(needed: int) -> int:
    """Raise this process's RLIMIT_NOFILE (its children inherit it) to at least ``needed``,
    within the hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, needed)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < needed:
        raise SystemExit(
            f"bench.subscribers: {needed} open files are needed and the hard limit is {hard} "
            "(raise it: ulimit -Hn, or fewer --subscribers)"
        )
    return wanted


@contextlib.contextmanager
def promenade_up(data_dir: Path, sockets: int) -> Iterator[Server]:
    """``promenade up`` on free ports, until it answers; stopped (with every integration it
    started) at the end. Its limits of websockets per user and per address let ``sockets``
    in (the benchmark's are all one user's, from one address)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}
    env.update(
        PROMENADE_DATA_DIR=str(data_dir),
        PROMENADE_PORT=str(port),
        PROMENADE_GATEWAY_PORT=str(free_port()),
        PROMENADE_WS_PER_USER=str(sockets + 10),
        PROMENADE_WS_PER_ADDRESS=str(sockets + 10),
    )
    log_path = data_dir / "promenade-up.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [PROMENADE, "up"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=data_dir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        assert process.stdout is not None
        token = process.stdout.readline().strip()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"promenade up did not start:\n{log_path.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1, trust_env=False).status_code == 200:
                    break
            time.sleep(0.1)
        yield Server(url=url, pid=process.pid, token=token, data_dir=data_dir)
    finally:
        stop(process)
        kill_instances(data_dir / "runtime")


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM, and SIGKILL if it has not ended 30 s later."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_instances(runtime_dir: Path) -> None:
    """SIGKILL what the LOCAL_PROCESS runtime under ``runtime_dir`` may have left running (its
    processes' environment names a configuration file there)."""
    marker = f"PROMENADE_CONFIG_FILE={runtime_dir.resolve()}/".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(item.startswith(marker) for item in environ.split(b"\0")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_s(pid: int) -> float:
    """User and system CPU time of the process so far."""
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


@contextlib.contextmanager
def sampled(pid: int, output: Path | None) -> Iterator[None]:
    """With ``output``, py-spy samples the process meanwhile (raw stacks, for a flame graph)."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(output)]
    process = subprocess.Popen([*command, "--nonblocking"], stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes what it sampled and exits
        process.wait(timeout=60)


@contextlib.contextmanager
def bare_broadcaster() -> Iterator[Server]:
    """bench/broadcaster.py on a free port, until it listens; stopped at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.broadcaster", str(port)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit("the bare broadcaster did not start")
        yield Server(url=f"http://127.0.0.1:{port}", pid=process.pid, token="", data_dir=ROOT)
    finally:
        stop(process)


# ---- GraphQL over HTTP -----------------------------------------------------------------------


class Api:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def ok(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The result of a one-field query or mutation; fails on errors and error types."""
        response = await self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise RuntimeError(f"GraphQL errors: {body['errors']}")
        (result,) = body["data"].values()
        if isinstance(result, dict) and "code" in result:
            raise RuntimeError(f"{query.split('(')[0]}: {result}")
        assert isinstance(result, dict)
        return result


@dataclass
class Greeter:
    environment_id: str
    deployment_id: str


async def deploy_greeter(api: Api) -> Greeter:
    organization = await api.ok(
        'query { organization(slug: "default") { id environments { id name } } }', {}
    )
    development = next(e["id"] for e in organization["environments"] if e["name"] == "Development")
    project = await api.ok(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
            ... on Error { code message } ... on Project { id } } }""",
        {"input": {"organizationId": organization["id"], "name": "Bench"}},
    )
    integration = await api.ok(
        """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
            ... on Error { code message } ... on Integration { id } } }""",
        {"input": {"projectId": project["id"], "name": "Greeter", "configSchema": []}},
    )
    build = await api.ok(
        """mutation($input: CreateBuildInput!) { createBuild(input: $input) {
            ... on Error { code message } ... on Build { id } } }""",
        {
            "input": {
                "integrationId": integration["id"],
                "version": "1.0.0",
                "artifact": shlex.join([INSTANCE_PYTHON, str(GREETER)]),
            }
        },
    )
    deployment = await api.ok(
        """mutation($input: DeployInput!) { deploy(input: $input) {
            ... on Error { code message } ... on Deployment { id } } }""",
        {
            "input": {
                "integrationId": integration["id"],
                "buildId": build["id"],
                "environmentId": development,
            }
        },
    )
    greeter = Greeter(environment_id=development, deployment_id=deployment["id"])
    await wait_active(api, greeter)
    return greeter


async def wait_active(api: Api, greeter: Greeter) -> int:
    """The deployment's revision once it is ACTIVE."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        node = await api.ok(
            """query($id: ID!) { node(id: $id) { ... on Deployment {
                status revision lastError } } }""",
            {"id": greeter.deployment_id},
        )
        if node["status"] == "ACTIVE":
            return int(node["revision"])
        if node["status"] == "ERROR":
            raise RuntimeError(f"the greeter failed: {node['lastError']}")
        await asyncio.sleep(0.1)
    raise RuntimeError("the greeter did not become ACTIVE within 60 s")


async def restart(api: Api, greeter: Greeter) -> None:
    await api.ok(
        """mutation($id: ID!) { restartDeployment(id: $id) {
            ... on Error { code message } ... on Deployment { id } } }""",
        {"id": greeter.deployment_id},
    )


# ---- subscribers -----------------------------------------------------------------------------


def event_key(raw: str | bytes) -> str | None:
    """What identifies an event across subscribers: its revision, detail and ``at``."""
    message = json.loads(raw)
    if message.get("type") != "next":
        return None
    event = message["payload"]["data"]["deploymentEvents"]
    return f"{event['revision']}|{event['detail']}@{event['at']}"


def key_revision(key: str) -> int:
    return int(key.split("|", 1)[0])


def key_at(key: str) -> float:
    return datetime.fromisoformat(key.rsplit("@", 1)[1]).timestamp()


@contextlib.asynccontextmanager
async def subscriber(
    url: str, token: str, environment_id: str, *, compression: bool
) -> AsyncIterator[ClientConnection]:
    """A websocket with one ``deploymentEvents`` subscription, acknowledged. With
    ``compression`` the client offers permessage-deflate, as browsers do."""
    ws_url = url.replace("http://", "ws://", 1) + "/graphql"
    async with connect(
        ws_url,
        subprotocols=[PROTOCOL],
        proxy=None,
        open_timeout=120,
        max_queue=None,
        compression="deflate" if compression else None,
    ) as connection:
        await connection.send(
            json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})
        )
        ack = json.loads(await connection.recv())
        if ack.get("type") != "connection_ack":
            raise RuntimeError(f"connection refused: {ack}")
        await connection.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {
                        "query": DEPLOYMENT_EVENTS,
                        "variables": {"environmentId": environment_id},
                    },
                }
            )
        )
        yield connection


@dataclass
class Received:
    """What one connection received: (time.time() on arrival, raw message)."""

    messages: list[tuple[float, str | bytes]] = field(default_factory=list)
    parsed: int = 0  # messages already counted in a Tally


@dataclass
class Tally:
    """For each event: how many connections had it, and when the last one did. Messages are
    parsed here, away from the readers, which only take the time and keep the text."""

    events: dict[str, list[float]] = field(default_factory=dict)  # key -> [count, last]

    def update(self, boxes: Sequence[Received]) -> None:
        for box in boxes:
            for arrived, raw in box.messages[box.parsed :]:
                key = event_key(raw)
                if key is None:
                    continue
                entry = self.events.setdefault(key, [0, 0.0])
                entry[0] += 1
                entry[1] = max(entry[1], arrived)
            box.parsed = len(box.messages)

    def count(self, key: str) -> int:
        return int(self.events.get(key, [0, 0.0])[0])


async def read_into(connection: ClientConnection, received: Received) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for raw in connection:
            received.messages.append((time.time(), raw))


async def client_process(
    url: str, token: str, environment_id: str, count: int, *, compression: bool
) -> None:
    """A client process (``--client``): opens ``count`` subscribers, prints ``ready``, then
    answers on stdin: ``min`` (the fewest events any of its connections has), ``count KEY``
    (how many of its connections had that event), ``report`` (for each event: how many had
    it, and when the last one did, as JSON), ``exit``."""
    boxes = [Received() for _ in range(count)]
    tally = Tally()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    async with contextlib.AsyncExitStack() as stack:

        async def open_one(box: Received) -> asyncio.Task[None]:
            async with gate:
                connection = await stack.enter_async_context(
                    subscriber(url, token, environment_id, compression=compression)
                )
            return asyncio.create_task(read_into(connection, box))

        readers = await asyncio.gather(*(open_one(box) for box in boxes))
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        stdin = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
        while command := (await stdin.readline()).decode().strip():
            verb, _, argument = command.partition(" ")
            if verb == "min":
                print(min(len(box.messages) for box in boxes), flush=True)
            elif verb == "count":
                tally.update(boxes)
                print(tally.count(argument), flush=True)
            elif verb == "report":
                tally.update(boxes)
                print(json.dumps(tally.events), flush=True)
            elif verb == "exit":
                break
        for reader in readers:
            reader.cancel()


class Clients:
    """The client processes, driven over their stdin and stdout."""

    def __init__(self, processes: list[asyncio.subprocess.Process], subscribers: int) -> None:
        self.processes = processes
        self.subscribers = subscribers

    async def wait_for(self, key: str, within: float) -> None:
        """Until every subscriber had the event (or ``within`` seconds passed)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if sum(int(count) for count in await self.ask(f"count {key}")) >= self.subscribers:
                return
            await asyncio.sleep(0.1)

    async def ask(self, command: str) -> list[str]:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.write(f"{command}\n".encode())
            await process.stdin.drain()
        answers = []
        for process in self.processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if not line:
                raise RuntimeError(f"a client process exited ({process.returncode})")
            answers.append(line.decode().strip())
        return answers


@contextlib.asynccontextmanager
async def client_processes(
    server: Server, environment_id: str, subscribers: int, clients: int, *, compression: bool
) -> AsyncIterator[Clients]:
    shares = [
        subscribers // clients + (1 if i < subscribers % clients else 0) for i in range(clients)
    ]
    env = {**os.environ, "PROMENADE_TOKEN": server.token}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.subscribers",
            "--client",
            f"{server.url},{environment_id},{share}",
            *([] if compression else ["--no-compression"]),
            env=env,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for share in shares
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 300)
            if line.strip() != b"ready":
                raise RuntimeError(f"a client process did not open its connections: {line!r}")
        yield Clients(processes, subscribers)
    finally:
        for process in processes:
            if process.returncode is None and process.stdin is not None:
                with contextlib.suppress(ConnectionError):
                    process.stdin.write(b"exit\n")
                    await process.stdin.drain()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


# ---- the run ---------------------------------------------------------------------------------


@dataclass
class Latencies:
    """Seconds, per event."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def p99(self) -> float:
        return percentile(self.values, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    subscribers: int
    clients: int
    compression: bool  # whether the clients offered permessage-deflate
    events: int
    rss_before_kib: int
    rss_after_kib: int
    memory_per_subscriber_kib: float
    rss_closed_kib: int  # once they all closed
    rss_closed_again_kib: int  # once as many more opened, had an event, and closed
    alone_s: list[float]  # the single subscriber before the others were there
    single_s: list[float]  # the single subscriber, with the others
    last_s: list[float]  # the last of the others, same events
    spread_s: list[float]  # last - single, same event
    ratio: list[float]  # last / single, per event
    missed: int  # deliveries that never came (events x subscribers - received)
    # Server CPU per event and subscriber that the crowd adds: (CPU per event with them - CPU
    # per event alone) / subscribers.
    crowd_cpu_us: float
    # The same clients served by the bare broadcaster (bench/broadcaster.py), same run.
    bare_single_s: list[float]
    bare_last_s: list[float]
    bare_cpu_us: float  # its CPU per event and subscriber
    bare_missed: int

    @property
    def second_round_growth_ratio(self) -> float:
        """What a second round of as many subscribers left behind, against what the first
        one took: about 0 when closing gives back what opening took for reuse (the RSS stays
        at its high-water mark, the allocator's), about 1 when every connection leaks."""
        first = self.rss_after_kib - self.rss_before_kib
        return (self.rss_closed_again_kib - self.rss_closed_kib) / first if first > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        def stats(values: list[float]) -> dict[str, float]:
            return {"median": statistics.median(values), "p99": percentile(values, 99)}

        return {
            "subscribers": self.subscribers,
            "client_processes": self.clients,
            "permessage_deflate": self.compression,
            "events": self.events,
            "rss_before_kib": self.rss_before_kib,
            "rss_after_kib": self.rss_after_kib,
            "memory_per_subscriber_kib": round(self.memory_per_subscriber_kib, 2),
            "rss_closed_kib": self.rss_closed_kib,
            "rss_closed_again_kib": self.rss_closed_again_kib,
            "second_round_growth_ratio": round(self.second_round_growth_ratio, 3),
            "single_alone_s": stats(self.alone_s),
            "single_s": stats(self.single_s),
            "last_of_all_s": stats(self.last_s),
            "last_after_single_s": stats(self.spread_s),
            "ratio_last_to_single": stats(self.ratio),
            "missed_deliveries": self.missed,
            "crowd_cpu_per_event_and_subscriber_us": round(self.crowd_cpu_us, 1),
            "bare_broadcaster": {
                "single_s": stats(self.bare_single_s),
                "last_of_all_s": stats(self.bare_last_s),
                "cpu_per_event_and_subscriber_us": round(self.bare_cpu_us, 1),
                "missed_deliveries": self.bare_missed,
            },
            "ratio_last_to_bare_broadcaster": {
                "median": statistics.median(self.last_s) / statistics.median(self.bare_last_s),
                "p99": percentile(self.last_s, 99) / percentile(self.bare_last_s, 99),
            },
            "raw": asdict(self),
        }


async def until_each_had_one(api: Api, greeter: Greeter, clients: Clients) -> None:
    """Restart until every subscriber has had an event (then every subscription is in the
    hub)."""
    while min(int(answer) for answer in await clients.ask("min")) < 1:
        await restart(api, greeter)
        await wait_active(api, greeter)
        await asyncio.sleep(0.5)


async def settled_rss(server: Server) -> int:
    """The server's RSS once the closed sockets were let go (their tasks end, the per-user
    counts drop): read after a few seconds."""
    await asyncio.sleep(3)
    return rss_kib(server.pid)


async def single_events(box: Received, start: int, revision: int) -> list[tuple[str, float]]:
    """The events the single subscriber got from ``box.messages[start]`` on, once one of them
    is of a revision after ``revision`` (a restart is done); (key, arrival) each."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        keys = [(key, arrived) for arrived, raw in box.messages[start:] if (key := event_key(raw))]
        if any(key_revision(key) > revision for key, _ in keys):
            return keys
        await asyncio.sleep(0.01)
    raise RuntimeError("the single subscriber saw no restart end within 60 s")


async def collect(
    api: Api, greeter: Greeter, box: Received, events: int, clients: Clients | None = None
) -> dict[str, float]:
    """Restart the deployment until the single subscriber has had ``events`` events (a
    restart announces "restart queued" from the API, then the new revision from the worker);
    key -> arrival at the single subscriber. One restart at a time: the next starts once the
    single subscriber has the new revision and, with ``clients``, all of them had the
    events of the restart (at most a minute)."""
    seen: dict[str, float] = {}
    while len(seen) < events:
        revision = await wait_active(api, greeter)
        start = len(box.messages)
        await restart(api, greeter)
        restarted = await single_events(box, start, revision)
        for key, arrived in restarted:
            seen.setdefault(key, arrived)
        if clients is not None:
            for key, _ in restarted:
                await clients.wait_for(key, within=60)
    return dict(list(seen.items())[:events])


async def run(args: argparse.Namespace, server: Server) -> Result:
    async with httpx.AsyncClient(
        base_url=server.url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=60,
        trust_env=False,
    ) as http:
        api = Api(http)
        greeter = await deploy_greeter(api)
        box = Received()
        compression = not args.no_compression
        async with subscriber(
            server.url, server.token, greeter.environment_id, compression=compression
        ) as single:
            reader = asyncio.create_task(read_into(single, box))
            await collect(api, greeter, box, 2)  # warm-up
            cpu_before = cpu_s(server.pid)
            alone = await collect(api, greeter, box, args.events)
            alone_cpu_s = cpu_s(server.pid) - cpu_before
            await asyncio.sleep(1)
            rss_before = rss_kib(server.pid)
            async with client_processes(
                server,
                greeter.environment_id,
                args.subscribers,
                args.clients,
                compression=compression,
            ) as clients:
                await until_each_had_one(api, greeter, clients)
                await collect(api, greeter, box, 2, clients)  # warm-up
                await asyncio.sleep(1)
                rss_after = rss_kib(server.pid)
                cpu_before = cpu_s(server.pid)
                with sampled(server.pid, args.profile_server):
                    measured = await collect(api, greeter, box, args.events, clients)
                crowd_cpu_s = cpu_s(server.pid) - cpu_before
                reports = [json.loads(answer) for answer in await clients.ask("report")]
            rss_closed = await settled_rss(server)
            # A second round: as many subscribers open, each has an event, all close.
            async with client_processes(
                server,
                greeter.environment_id,
                args.subscribers,
                args.clients,
                compression=compression,
            ) as clients:
                await until_each_had_one(api, greeter, clients)
            rss_closed_again = await settled_rss(server)
            reader.cancel()
    single_s, last_s, missed = arrivals(measured, reports, args.subscribers)
    spread = [last - single for single, last in zip(single_s, last_s, strict=True)]
    ratio = [last / single for single, last in zip(single_s, last_s, strict=True)]
    bare = await bare_run(args)
    per_event = args.subscribers * len(measured)
    return Result(
        subscribers=args.subscribers,
        clients=args.clients,
        compression=not args.no_compression,
        events=len(measured),
        rss_before_kib=rss_before,
        rss_after_kib=rss_after,
        memory_per_subscriber_kib=(rss_after - rss_before) / args.subscribers,
        rss_closed_kib=rss_closed,
        rss_closed_again_kib=rss_closed_again,
        alone_s=[arrived - key_at(key) for key, arrived in alone.items()],
        single_s=single_s,
        last_s=last_s,
        spread_s=spread,
        ratio=ratio,
        missed=missed,
        crowd_cpu_us=(crowd_cpu_s - alone_cpu_s * len(measured) / len(alone)) / per_event * 1e6,
        bare_single_s=bare.single_s,
        bare_last_s=bare.last_s,
        bare_cpu_us=bare.cpu_s / per_event * 1e6,
        bare_missed=bare.missed,
    )


def arrivals(
    measured: dict[str, float], reports: list[dict[str, Any]], subscribers: int
) -> tuple[list[float], list[float], int]:
    """For each event: seconds from its ``at`` until the single subscriber had it, and until
    the last of the clients' subscribers did; and the deliveries that never came."""
    single_s, last_s = [], []
    missed = 0
    for key, arrived in measured.items():
        at = key_at(key)
        missed += subscribers - sum(int(report.get(key, [0, 0.0])[0]) for report in reports)
        last = max(float(report.get(key, [0, 0.0])[1]) for report in reports)
        single_s.append(arrived - at)
        last_s.append(last - at)
    return single_s, last_s, missed


@dataclass
class BareRun:
    single_s: list[float]
    last_s: list[float]
    cpu_s: float  # the broadcaster's, over the measured events
    missed: int


async def bare_run(args: argparse.Namespace) -> BareRun:
    """The same clients (as many, as many processes, the same compression) against the bare
    broadcaster, --events events one at a time, each once all had the one before."""
    compression = not args.no_compression
    with bare_broadcaster() as server:
        async with (
            httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=60) as http,
            subscriber(server.url, server.token, "env_bare", compression=compression) as single,
            client_processes(
                server, "env_bare", args.subscribers, args.clients, compression=compression
            ) as clients,
        ):
            box = Received()
            reader = asyncio.create_task(read_into(single, box))
            sequence = iter(range(1, 1 << 30))

            async def one_event() -> tuple[str, float]:
                revision = next(sequence)
                start = len(box.messages)
                event = {"deploymentId": "dep_bare", "status": "ACTIVE", "revision": revision}
                await http.post("/publish", json={**event, "detail": f"event {revision}"})
                key, arrived = (await single_events(box, start, revision - 1))[0]
                await clients.wait_for(key, within=60)
                return key, arrived

            for _ in range(3):  # warm-up: every subscription is there once all had one
                await one_event()
            cpu_before = cpu_s(server.pid)
            measured = dict([await one_event() for _ in range(args.events)])
            cpu = cpu_s(server.pid) - cpu_before
            reports = [json.loads(answer) for answer in await clients.ask("report")]
            reader.cancel()
    single_s, last_s, missed = arrivals(measured, reports, args.subscribers)
    return BareRun(single_s=single_s, last_s=last_s, cpu_s=cpu, missed=missed)


def print_table(result: Result) -> None:
    ms = 1000.0
    print(f"{result.subscribers} subscribers of deploymentEvents on one `promenade up`")
    deflate = "with" if result.compression else "without"
    print(
        f"({result.clients} client processes, {deflate} permessage-deflate), "
        f"{result.events} events measured"
    )
    print()
    print(
        f"memory per subscriber: {result.memory_per_subscriber_kib:.1f} KiB "
        f"(server RSS {result.rss_before_kib / 1024:.1f} MiB -> "
        f"{result.rss_after_kib / 1024:.1f} MiB)"
    )
    print(
        f"after they closed: {result.rss_closed_kib / 1024:.1f} MiB; after as many more "
        f"opened and closed: {result.rss_closed_again_kib / 1024:.1f} MiB "
        f"(second round growth / first: {result.second_round_growth_ratio:.3f})"
    )
    print()
    heading = "time from the event's at until"
    print(f"{heading:<44}{'median':>10}{'p99':>10}")
    rows = [
        ("the single subscriber has it (alone)", Latencies(result.alone_s), ms, "ms"),
        ("the single subscriber has it (with all)", Latencies(result.single_s), ms, "ms"),
        (f"the last of {result.subscribers} has it", Latencies(result.last_s), ms, "ms"),
        ("  of which after the single subscriber", Latencies(result.spread_s), ms, "ms"),
        ("ratio last / single (same event)", Latencies(result.ratio), 1.0, "x"),
    ]
    for label, latencies, scale, unit in rows:
        median, p99 = latencies.median * scale, latencies.p99 * scale
        print(f"{label:<44}{median:>8.1f}{unit:<2}{p99:>8.1f}{unit}")
    bare_rows = [
        ("the bare broadcaster: the single subscriber", Latencies(result.bare_single_s)),
        (f"the bare broadcaster: the last of {result.subscribers}", Latencies(result.bare_last_s)),
    ]
    for label, latencies in bare_rows:
        print(f"{label:<44}{latencies.median * ms:>8.1f}ms{latencies.p99 * ms:>8.1f}ms")
    summary = result.summary()["ratio_last_to_bare_broadcaster"]
    label = "ratio last / the bare broadcaster's last"
    print(f"{label:<44}{summary['median']:>8.1f}x {summary['p99']:>8.1f}x")
    print()
    print(
        f"server CPU per event and subscriber: {result.crowd_cpu_us:.0f} us added by the crowd "
        f"(the bare broadcaster: {result.bare_cpu_us:.0f} us)"
    )
    print(f"missed deliveries: {result.missed} (the bare broadcaster: {result.bare_missed})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.subscribers",
        description="Memory per websocket subscriber and fan-out latency of deploymentEvents.",
    )
    parser.add_argument("--subscribers", type=int, default=1000, help="default 1000")
    parser.add_argument("--events", type=int, default=20, help="events measured (default 20)")
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes holding them (default 2)"
    )
    parser.add_argument(
        "--no-compression",
        action="store_true",
        help="clients do not offer permessage-deflate (browsers do; the default does)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--profile-server",
        type=Path,
        help="py-spy's raw stacks of the server while the crowd gets the measured events "
        "(needs py-spy: pip install py-spy)",
    )
    # Internal: a client process (URL,ENVIRONMENT_ID,COUNT; the token in PROMENADE_TOKEN).
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.subscribers < 1 or args.events < 1 or args.clients < 1:
        parser.error("--subscribers, --events and --clients must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.client:
        url, environment_id, count = args.client.split(",")
        token = os.environ["PROMENADE_TOKEN"]
        compression = not args.no_compression
        asyncio.run(client_process(url, token, environment_id, int(count), compression=compression))
        return
    # The server holds a socket per subscriber, each client process its share, and more.
    raise_open_files_limit(args.subscribers + 1024)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up on SIGTERM too
    with (
        tempfile.TemporaryDirectory(prefix=f"promenade-bench-{secrets.token_hex(3)}-") as tmp,
        promenade_up(Path(tmp), args.subscribers) as server,
    ):
        result = asyncio.run(run(args, server))
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
