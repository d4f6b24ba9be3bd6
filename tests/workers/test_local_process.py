"""The LOCAL_PROCESS runtime with real greeter processes, seen through the real gateway."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.processes import INSTANCE_PYTHON
from tests.support.waiting import until
from workers.gateway import create_gateway_app
from workers.runtimes.base import Instance, InstanceSpec, StartFailed
from workers.runtimes.instance_files import config_toml
from workers.runtimes.local_process import LocalProcessRuntime
from workers.runtimes.local_users import FIRST_UID, LAST_UID, LocalUsers

GREETER = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "app.py"
GREETER_COMMAND = shlex.join([sys.executable, str(GREETER)])
GATEWAY_URL = "http://gateway.test"
DEPLOYMENT = "dep-greeter"
ROUTE = "/stg/billing/greeter"
ENDPOINT = f"{GATEWAY_URL}{ROUTE}/"
SECRET = "s3cret-api-key-7f1c"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def greeter(
    change_id: str,
    *,
    greeting: str = "Hello",
    values: Mapping[str, str] | None = None,
    file_keys: frozenset[str] = frozenset(),
    health_timeout_s: float = 15.0,
) -> InstanceSpec:
    return InstanceSpec(
        deployment_id=DEPLOYMENT,
        change_id=change_id,
        artifact=GREETER_COMMAND,
        values={"GREETING": greeting, **(values or {})},
        file_keys=file_keys,
        secret_keys=frozenset({"API_KEY"}) & frozenset(values or {}),
        route=ROUTE,
        health_timeout_s=health_timeout_s,
    )


def recorded_pids(state_dir: Path) -> Iterator[int]:
    for record in state_dir.glob("*/*/instance.json"):
        yield int(json.loads(record.read_text())["pid"])


def wait_gone(pid: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    pytest.fail(f"process {pid} is still running")


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[LocalProcessRuntime]:
    runtime = LocalProcessRuntime(tmp_path / "runtime", GATEWAY_URL, grace_period_s=5.0)
    try:
        yield runtime
    finally:
        # Whatever a test left running goes, and none of it may outlive the test.
        pids = list(recorded_pids(runtime.state_dir))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        for pid in pids:
            wait_gone(pid)


@pytest.fixture
async def gateway(runtime: LocalProcessRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway_app(runtime.routes_file)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY_URL) as client,
    ):
        yield client


async def deploy(runtime: LocalProcessRuntime, spec: InstanceSpec) -> tuple[Instance, str]:
    """What the step machine does for a change: start, route, retire the others."""
    instance = await runtime.start(spec)
    url = await runtime.route(spec.deployment_id, spec.route, instance)
    await runtime.retire_others(spec.deployment_id, spec.change_id)
    return instance, url


async def greeting(gateway: httpx.AsyncClient, url: str = ENDPOINT) -> dict[str, Any]:
    response = await gateway.get(url)
    assert response.status_code == 200, response.text
    assert SECRET not in response.text
    body: dict[str, Any] = response.json()
    return body


def process_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (item.decode().split("=", 1) for item in raw.split(b"\0") if item)
    return {name: value for name, value in pairs}


def private_file(path: Path) -> tuple[int, str]:
    """A file's permission bits and its text."""
    return stat.S_IMODE(path.stat().st_mode), path.read_text()


def pid_in_output(message: str) -> int:
    match = re.search(r"greeter: listening on \S+ \(pid (\d+)\)", message)
    assert match, message
    return int(match.group(1))


async def test_instance_answers_with_its_configuration_through_the_gateway(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's own settings (its secret key above all) must not reach an integration.
    monkeypatch.setenv("PROMENADE_SECRET_KEY", "the-workers-own-key")
    values = {
        "ENVIRONMENT_NAME": "Staging",
        "REPEAT": "3",
        "API_KEY": SECRET,
        "/certs/ca.pem": CERTIFICATE,
    }
    spec = greeter(
        "change-1",
        greeting="Hello from staging",
        values=values,
        file_keys=frozenset({"/certs/ca.pem"}),
    )

    instance, url = await deploy(runtime, spec)

    assert url == ENDPOINT == runtime.endpoint_url(ROUTE)
    body = await greeting(gateway, url)
    assert body == {
        "greeting": "Hello from staging",
        "environment": "Staging",
        "repeat": 3,
        "has_api_key": True,
        "config_file_keys": ["/certs/ca.pem", "API_KEY", "ENVIRONMENT_NAME", "GREETING", "REPEAT"],
        "secret_files": ["API_KEY"],
        "pid": body["pid"],
    }
    # The route's prefix is stripped: the greeter sees /healthz.
    health = await gateway.get(url + "healthz")
    assert (health.status_code, health.text) == (200, "ok")

    env = process_environment(body["pid"])
    assert env["API_KEY"] == SECRET
    assert env["GREETING"] == "Hello from staging"
    assert env["PORT"] == instance.address.rsplit(":", 1)[1]
    assert "PROMENADE_SECRET_KEY" not in env
    assert "/certs/ca.pem" not in env
    config_mode, config_text = private_file(Path(env["PROMENADE_CONFIG_FILE"]))
    assert config_mode == 0o600
    assert tomllib.loads(config_text) == spec.values
    certificate = Path(env["PROMENADE_FILES_DIR"]) / "certs" / "ca.pem"
    assert private_file(certificate) == (0o600, CERTIFICATE)


def test_config_file_round_trips_any_string() -> None:
    values = {
        "QUOTED": 'say "hi" \\o/',
        "LINES": "one\ntwo\r\n\tthree",
        "CONTROL": "\x00\x01\x1b\x7f",
        "UNICODE": "grüße ✓ 𝄞",
        "/certs/ca.pem": CERTIFICATE,
        'a "strange" key': "",
    }
    assert tomllib.loads(config_toml(values)) == values


async def test_restart_routes_to_the_new_instance_and_retires_the_old_one(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    _, first_url = await deploy(runtime, greeter("change-1", greeting="Hello"))
    first = await greeting(gateway)

    _, second_url = await deploy(runtime, greeter("change-2", greeting="Bonjour"))

    assert second_url == first_url
    second = await greeting(gateway, first_url)
    assert second["greeting"] == "Bonjour"
    assert second["pid"] != first["pid"]
    assert_gone(first["pid"])
    # Retiring again (a redelivered command) changes nothing.
    await runtime.retire_others(DEPLOYMENT, "change-2")
    assert (await greeting(gateway))["pid"] == second["pid"]

    # The old instance's log is kept; the newest instance's lines come last.
    lines = await runtime.logs(DEPLOYMENT)
    first_started = lines.index(f"greeter: listening on {_address_of(lines, first['pid'])}")
    first_stopped = lines.index("greeter: stopped")
    second_started = lines.index(f"greeter: listening on {_address_of(lines, second['pid'])}")
    assert first_started < first_stopped < second_started
    assert await runtime.logs(DEPLOYMENT, lines=2) == lines[-2:]


def _address_of(lines: list[str], pid: int) -> str:
    """The rest of the greeter's 'listening on' line for the process ``pid``."""
    for line in lines:
        if line.startswith("greeter: listening on ") and line.endswith(f"(pid {pid})"):
            return line.removeprefix("greeter: listening on ")
    raise AssertionError(f"no start line for pid {pid} in {lines}")


async def test_start_is_idempotent_per_change(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    spec = greeter("change-1")
    # A redelivered command racing its first delivery.
    first, again = await asyncio.gather(runtime.start(spec), runtime.start(spec))
    assert again == first
    await runtime.route(DEPLOYMENT, ROUTE, first)
    pid = (await greeting(gateway))["pid"]

    assert await runtime.start(spec) == first
    # A new worker on the machine, after the one that started it died.
    next_worker = LocalProcessRuntime(runtime.state_dir, GATEWAY_URL)
    assert await next_worker.start(spec) == first
    assert (await greeting(gateway))["pid"] == pid

    # An instance that died is started again for the same change.
    os.killpg(pid, signal.SIGKILL)
    wait_gone(pid)
    restarted = await next_worker.start(spec)
    await next_worker.route(DEPLOYMENT, ROUTE, restarted)
    new_pid = (await greeting(gateway))["pid"]
    assert new_pid != pid
    # ... and the first worker's object, which did not start it, can stop it.
    await runtime.stop(DEPLOYMENT, ROUTE)
    wait_gone(new_pid)


async def test_a_crashing_build_fails_and_the_old_instance_keeps_serving(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    await deploy(runtime, greeter("change-1", greeting="Hello"))

    with pytest.raises(StartFailed) as failure:
        await runtime.start(greeter("change-2", values={"GREETER_FAIL": "crash"}))

    message = str(failure.value)
    assert "exited with code 3" in message
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in message
    assert (await greeting(gateway))["greeting"] == "Hello"


async def test_a_build_that_never_becomes_healthy_is_stopped(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    await deploy(runtime, greeter("change-1", greeting="Hello"))
    started = time.monotonic()

    with pytest.raises(StartFailed) as failure:
        await runtime.start(
            greeter("change-2", values={"GREETER_FAIL": "unhealthy"}, health_timeout_s=2)
        )

    assert time.monotonic() - started < 2 + 5  # the timeout, and the greeter's quick SIGTERM
    message = str(failure.value)
    assert "did not become healthy within 2s: GET /healthz answered HTTP 503" in message
    assert_gone(pid_in_output(message))
    assert (await greeting(gateway))["greeting"] == "Hello"


async def test_a_build_that_cannot_run_fails_to_start(runtime: LocalProcessRuntime) -> None:
    missing = InstanceSpec(
        deployment_id=DEPLOYMENT,
        change_id="change-1",
        artifact="/nonexistent/integration -v",
        values={},
        route=ROUTE,
    )
    with pytest.raises(StartFailed, match="could not run '/nonexistent/integration'"):
        await runtime.start(missing)

    escaping = greeter(
        "change-2", values={"../../escape": "x"}, file_keys=frozenset({"../../escape"})
    )
    with pytest.raises(StartFailed, match="is not a path inside the instance"):
        await runtime.start(escaping)
    assert not (runtime.state_dir / "escape").exists()
    assert list(recorded_pids(runtime.state_dir)) == []  # nothing was started


async def test_stop_removes_the_route_and_stops_the_instances(
    runtime: LocalProcessRuntime, gateway: httpx.AsyncClient
) -> None:
    _, url = await deploy(runtime, greeter("change-1", greeting="Hello"))
    pid = (await greeting(gateway, url))["pid"]

    await runtime.stop(DEPLOYMENT, ROUTE)

    response = await gateway.get(url)
    assert response.status_code == 404
    assert response.json() == {"error": "no integration at this path"}
    assert_gone(pid)
    logs = await runtime.logs(DEPLOYMENT)
    assert f"greeter: listening on {_address_of(logs, pid)}" in logs
    assert logs[-1] == "greeter: stopped"  # it was asked (SIGTERM), not killed
    await runtime.stop(DEPLOYMENT, ROUTE)  # idempotent


async def test_workers_sharing_a_machine_keep_every_route(tmp_path: Path) -> None:
    state_dir = tmp_path / "runtime"
    workers = [LocalProcessRuntime(state_dir, GATEWAY_URL) for _ in range(2)]

    async def route_many(runtime: LocalProcessRuntime, name: str) -> None:
        for i in range(15):
            instance = Instance(change_id="c", address=f"127.0.0.1:{1000 + i}")
            await runtime.route(f"{name}-{i}", f"/{name}/project/integration-{i}", instance)

    # Each in its own thread and event loop, as two worker processes would interleave.
    await asyncio.gather(
        *(asyncio.to_thread(asyncio.run, route_many(w, f"w{n}")) for n, w in enumerate(workers))
    )
    routes = json.loads((state_dir / "routes.json").read_text())
    assert len(routes) == 30


# ---- a Unix user per deployment ----------------------------------------------------------------

PROBE = Path(__file__).resolve().parents[1] / "support" / "probe" / "app.py"
WORKER_KEY = "the-workers-own-secret-key-9d2e"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[LocalUsers]:
    if os.geteuid() != 0:
        pytest.fail("a user per organization needs a worker that runs as root: run as root")
    files_dir = Path("/run") / f"promenade-test-{secrets.token_hex(4)}" / "instances"
    # A registry of the test's own, so uids of its own: a machine has one registry, and tests
    # that ran in parallel from the same first uid would kill each other's instances as strays.
    first_uid = FIRST_UID + secrets.randbelow(LAST_UID - FIRST_UID - 1_000_000)
    yield LocalUsers(registry=tmp_path / "users.json", files_dir=files_dir, first_uid=first_uid)
    shutil.rmtree(files_dir.parent, ignore_errors=True)


def private_data_dir() -> Path:
    """A data directory as a worker has one (0700, with a secret key), where anyone could
    look for it."""
    data_dir = Path(tempfile.mkdtemp(prefix="promenade-data-", dir="/tmp"))
    data_dir.chmod(0o700)
    (data_dir / "secret.key").write_text(WORKER_KEY)
    return data_dir


async def test_each_deployment_runs_as_a_user_of_its_own_and_reads_nothing_else(
    tmp_path: Path, users: LocalUsers, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a worker has that no integration may read: its settings, its data directory.
    monkeypatch.setenv("PROMENADE_SECRET_KEY", WORKER_KEY)
    data_dir = private_data_dir()
    runtime = LocalProcessRuntime(data_dir / "runtime", GATEWAY_URL, users=users)
    app = create_gateway_app(runtime.routes_file)
    try:
        victim = dataclasses.replace(
            greeter("chg-victim", values={"API_KEY": SECRET}),
            artifact=shlex.join([INSTANCE_PYTHON, str(GREETER)]),
            organization_id="org_victim",
        )
        await deploy(runtime, victim)
        probe = InstanceSpec(
            deployment_id="dep-probe",
            change_id="chg-probe",
            artifact=shlex.join([INSTANCE_PYTHON, str(PROBE)]),
            values={"PROBE_TOKEN": "the-probes-own-value"},
            secret_keys=frozenset({"PROBE_TOKEN"}),
            organization_id="org_attacker",
            route="/attacker/dev/probe/probe",
            health_timeout_s=15,
        )
        _, url = await deploy(runtime, probe)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=GATEWAY_URL, timeout=30
            ) as gateway,
        ):
            victim_body = await greeting(gateway)
            found = (await gateway.get(url)).json()

        victim_pid = victim_body["pid"]
        victim_uid = psutil.Process(victim_pid).uids().real
        assert victim_uid == users.uid_of(DEPLOYMENT) != 0
        assert found["uid"] == users.uid_of("dep-probe") not in (0, victim_uid)
        # A clean environment: nothing of the worker's, its own values only.
        assert "PROMENADE_SECRET_KEY" not in found["environment"]
        assert found["environment"]["PATH"] == "/usr/local/bin:/usr/bin:/bin"
        assert found["environment"]["PROBE_TOKEN"] == "the-probes-own-value"
        # Nothing of the worker's or the other organization's, wherever it looked.
        seen = json.dumps(found)
        assert WORKER_KEY not in seen
        assert SECRET not in seen
        assert f"{victim_pid}/environ" not in found["processes"]
        assert str(os.getpid()) + "/environ" not in found["processes"]
        assert not any(path.startswith(str(data_dir)) for path in found["files"])
        assert not any(str(users.files_dir) in path for path in found["files"])
        assert found["docker"] == {}
        # Its configuration belongs to root, readable by its group, and goes with it.
        config = os.stat(process_environment(victim_pid)["PROMENADE_CONFIG_FILE"])
        assert (config.st_uid, config.st_gid, stat.S_IMODE(config.st_mode)) == (
            0,
            victim_uid,
            0o440,
        )
        await runtime.stop("dep-probe", "")
        await runtime.stop(DEPLOYMENT, ROUTE)
        assert not users.instance_dir("chg-victim").exists()
        assert not users.instance_dir("chg-probe").exists()
    finally:
        for pid in recorded_pids(runtime.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_uids_are_allotted_once_per_deployment_and_machine(tmp_path: Path) -> None:
    registry = tmp_path / "users.json"
    first = LocalUsers(registry=registry, files_dir=tmp_path / "files")
    again = LocalUsers(registry=registry, files_dir=tmp_path / "elsewhere")
    uids = [first.uid_of("dep_a"), first.uid_of("dep_b"), again.uid_of("dep_a")]
    assert uids[0] == uids[2] != uids[1]
    assert all(uid >= 1_900_000_000 for uid in uids)


EVIL_LIBRARY = r"""
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    FILE *marker = fopen(getenv("EVIL_MARKER"), "a");
    if (marker) { fprintf(marker, "%d\n", (int)geteuid()); fclose(marker); }
}
"""


def plant_steering_files() -> tuple[Path, Path, Path]:
    """An organization's own files where any build could have put them: a program named like
    the one its artifact runs, and a library that notes who loaded it (in ``marker``)."""
    planted = Path(tempfile.mkdtemp(prefix="promenade-planted-", dir="/tmp"))
    planted.chmod(0o755)
    marker = planted / "marker"
    marker.touch(mode=0o666)
    marker.chmod(0o666)
    evil = planted / "python3"
    evil.write_text(f"#!/bin/sh\necho evil-$(id -u) >> {marker}\n")
    evil.chmod(0o755)
    source = planted / "evil.c"
    source.write_text(EVIL_LIBRARY.replace('getenv("EVIL_MARKER")', f'"{marker}"'))
    library = planted / "evil.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True, timeout=60
    )
    return planted, marker, library


async def test_values_that_steer_programs_affect_only_the_instance_never_root(
    tmp_path: Path, users: LocalUsers
) -> None:
    planted, marker, library = plant_steering_files()
    runtime = LocalProcessRuntime(tmp_path / "runtime", GATEWAY_URL, users=users)
    spec = dataclasses.replace(
        greeter("chg-steer", values={"PATH": str(planted), "LD_PRELOAD": str(library)}),
        artifact=shlex.join(["python3", str(GREETER)]),
    )
    try:
        instance = await runtime.start(spec)
        assert instance.address.startswith("127.0.0.1:")
        await runtime.stop(DEPLOYMENT, ROUTE)
        # The planted python3 never ran; the library was loaded by the instance's own
        # processes only, as its user.
        noted = marker.read_text().split() if marker.exists() else []
        assert not any(line.startswith("evil-") for line in noted), noted
        assert noted and all(int(uid) == users.uid_of(DEPLOYMENT) for uid in noted), noted
    finally:
        for pid in recorded_pids(runtime.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        shutil.rmtree(planted, ignore_errors=True)


def processes_of(uid: int) -> list[str]:
    """The command lines of the processes of ``uid`` that have not ended."""
    found = []
    for process in psutil.process_iter(["uids", "status", "cmdline"]):
        if process.info["uids"].real == uid and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(" ".join(process.info["cmdline"] or []))
    return found


async def test_processes_an_instance_left_behind_go_with_it(
    tmp_path: Path, users: LocalUsers
) -> None:
    runtime = LocalProcessRuntime(tmp_path / "runtime", GATEWAY_URL, users=users)
    # A build that starts a process of its own session, out of its instance's process group.
    escaping = shlex.join(["/bin/sh", "-c", f"setsid sleep 600 & exec {INSTANCE_PYTHON} {GREETER}"])
    try:
        for n in range(5):
            spec = dataclasses.replace(greeter(f"chg-{n}"), artifact=escaping)
            await deploy(runtime, spec)
        uid = users.uid_of(DEPLOYMENT)
        # The kept instance: the shell's exec'd greeter and its sleep (the retired ones' were
        # sent SIGKILL; on a busy machine they take a moment to be gone).
        await until(lambda: len(processes_of(uid)) == 2, what="only the kept instance's processes")
        await runtime.stop(DEPLOYMENT, ROUTE)
        await until(lambda: processes_of(uid) == [], what="no process of the deployment's user")
        # Of the stopped instances, the newest three keep their record and output.
        kept = sorted(d.name for d in (runtime.state_dir / DEPLOYMENT).iterdir())
        assert kept == ["chg-2", "chg-3", "chg-4"]
    finally:
        for pid in recorded_pids(runtime.state_dir):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
