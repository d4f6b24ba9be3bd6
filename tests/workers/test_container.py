"""The CONTAINER runtime on a real Docker Engine, with the greeter image, seen through the real
gateway: what an instance gets, how it is confined, and how it is replaced, restarted and
removed."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import docker
import httpx
import psutil
import pytest

from app.models import RuntimeKind
from app.services.dataplane_settings import ContainerSettings
from app.services.dataplanes import ServedDataPlane
from app.settings import Settings
from tests.support.docker import docker_host, greeter_image, remove_containers
from workers.gateway import create_gateway_app
from workers.planes import CannotServe, Runtimes
from workers.routes import RoutingTable
from workers.runtimes.base import Instance, InstanceSpec, StartFailed
from workers.runtimes.container import LABEL_DATA_PLANE, ContainerRuntime

GATEWAY_URL = "http://gateway.test"
DEPLOYMENT = "dep_container_test"
ROUTE = "/acme/stg/billing/greeter"
ENDPOINT = f"{GATEWAY_URL}{ROUTE}/"
SECRET = "s3cret-api-key-2c9d"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def image(docker_engine: docker.DockerClient) -> str:
    return greeter_image(docker_engine)


@pytest.fixture(scope="module")
def secret_env_image(docker_engine: docker.DockerClient, image: str) -> str:
    """The greeter, asking for API_KEY as an environment variable too."""
    tag = image.replace(":", "-secret-env:")
    docker_engine.images.build(
        fileobj=io.BytesIO(f"FROM {image}\n".encode()),
        labels={"io.promenade.secret-env": "API_KEY"},
        tag=tag,
        rm=True,
        network_mode="none",
    )
    return tag


@pytest.fixture
async def runtime(
    tmp_path: Path, docker_engine: docker.DockerClient
) -> AsyncIterator[ContainerRuntime]:
    plane = f"dp_test{secrets.token_hex(6)}"
    runtime = make_runtime(tmp_path, plane)
    try:
        yield runtime
    finally:
        remove_containers(docker_engine, f"{LABEL_DATA_PLANE}={plane}")
        kill_relays(tmp_path / "state")
        runtime.close()


def _gone(process: psutil.Process) -> None:
    with contextlib.suppress(psutil.Error, ChildProcessError):
        process.wait(timeout=5)


def kill_relays(state_dir: Path) -> None:
    for relay in state_dir.glob("*/*/relay.json"):
        pid = json.loads(relay.read_text())["pid"]
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()


def make_runtime(
    tmp_path: Path, plane: str, settings: ContainerSettings | None = None
) -> ContainerRuntime:
    return ContainerRuntime(
        tmp_path / "state",
        RoutingTable(tmp_path / "runtime", GATEWAY_URL),
        data_plane=plane,
        settings=settings or ContainerSettings(),
        docker_host=docker_host(),
        files_dir=tmp_path / "files",
    )


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_gateway_app(tmp_path / "runtime" / "routes.json")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=GATEWAY_URL) as client,
    ):
        yield client


def greeter(
    image: str,
    change_id: str,
    *,
    greeting: str = "Hello",
    values: Mapping[str, str] | None = None,
    health_timeout_s: float = 20.0,
) -> InstanceSpec:
    values = {"GREETING": greeting, **(values or {})}
    return InstanceSpec(
        deployment_id=DEPLOYMENT,
        change_id=change_id,
        artifact=image,
        values=values,
        file_keys=frozenset(k for k in values if k.startswith("/")),
        secret_keys=frozenset({"API_KEY"}) & frozenset(values),
        organization_id="org_acme",
        route=ROUTE,
        health_timeout_s=health_timeout_s,
    )


async def deploy(runtime: ContainerRuntime, spec: InstanceSpec) -> tuple[Instance, str]:
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


def containers(docker_engine: docker.DockerClient, runtime: ContainerRuntime) -> list[Any]:
    return list(
        docker_engine.containers.list(
            all=True, filters={"label": f"{LABEL_DATA_PLANE}={runtime.data_plane}"}
        )
    )


def exec_in(container: Any, *command: str) -> str:
    result = container.exec_run(list(command))
    return str(result.output.decode())


async def test_an_instance_gets_its_configuration_and_nothing_it_should_not(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    image: str,
) -> None:
    spec = greeter(
        image,
        "chg_1",
        greeting="Hello from a container",
        values={"API_KEY": SECRET, "REPEAT": "2", "/certs/ca.pem": CERTIFICATE},
    )
    instance, url = await deploy(runtime, spec)

    assert url == ENDPOINT
    body = await greeting(gateway)
    assert body["greeting"] == "Hello from a container"
    assert body["repeat"] == 2
    assert body["has_api_key"] is True  # from the secrets file
    # The TOML file has every value but the secret.
    assert body["config_file_keys"] == ["/certs/ca.pem", "GREETING", "REPEAT"]
    assert body["secret_files"] == ["API_KEY"]
    assert instance.address.startswith("127.0.0.1:")

    (container,) = containers(docker_engine, runtime)
    inspected = docker_engine.api.inspect_container(container.id)
    config, host = inspected["Config"], inspected["HostConfig"]
    # No secret in what `docker inspect` shows: environment, labels, command.
    assert SECRET not in json.dumps(inspected)
    assert "API_KEY" not in {item.split("=", 1)[0] for item in config["Env"]}
    assert config["User"] == "10001:10001"  # the image's own non-root user
    assert set(config["Labels"]) >= {
        "promenade.data-plane",
        "promenade.deployment",
        "promenade.change",
        "promenade.organization",
    }
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["NetworkMode"] == "none"
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["MemorySwap"] == 256 * 1024 * 1024
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 128
    assert host["Privileged"] is False
    assert not host.get("Binds")
    (mount,) = inspected["Mounts"]
    assert (mount["Destination"], mount["RW"]) == ("/run/promenade", False)

    # Inside: the files it was given, read-only; a read-only root; no way out.
    assert exec_in(container, "cat", "/run/promenade/secrets/API_KEY") == SECRET
    assert exec_in(container, "cat", "/run/promenade/files/certs/ca.pem") == CERTIFICATE
    assert "Read-only file system" in exec_in(
        container, "sh", "-c", "echo x > /run/promenade/secrets/API_KEY"
    )
    assert "Read-only file system" in exec_in(container, "touch", "/app/new")
    assert exec_in(container, "id", "-u").strip() == "10001"
    interfaces = exec_in(container, "cat", "/proc/net/dev")
    assert [line.split(":")[0].strip() for line in interfaces.splitlines()[2:]] == ["lo"]


async def test_the_image_may_ask_for_secrets_in_its_environment(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    secret_env_image: str,
) -> None:
    await deploy(runtime, greeter(secret_env_image, "chg_1", values={"API_KEY": SECRET}))
    (container,) = containers(docker_engine, runtime)
    env = docker_engine.api.inspect_container(container.id)["Config"]["Env"]
    assert f"API_KEY={SECRET}" in env
    assert (await greeting(gateway))["has_api_key"] is True


async def test_a_new_instance_replaces_the_old_one_which_is_removed_with_its_files(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    image: str,
    tmp_path: Path,
) -> None:
    await deploy(runtime, greeter(image, "chg_1", values={"API_KEY": SECRET}))
    (first,) = containers(docker_engine, runtime)
    first_relay = json.loads((tmp_path / "state" / DEPLOYMENT / "chg_1" / "relay.json").read_text())

    await deploy(runtime, greeter(image, "chg_2", greeting="Bonjour", values={"API_KEY": SECRET}))

    assert (await greeting(gateway))["greeting"] == "Bonjour"
    (second,) = containers(docker_engine, runtime)
    assert second.id != first.id
    files = tmp_path / "files" / runtime.data_plane
    assert not (files / "chg_1").exists()  # no secret of it left on disk
    assert (files / "chg_2" / "secrets" / "API_KEY").exists()
    assert not psutil.pid_exists(first_relay["pid"]) or (
        psutil.Process(first_relay["pid"]).status() == psutil.STATUS_ZOMBIE
    )
    assert not (tmp_path / "state" / DEPLOYMENT / "chg_1").exists()
    # Retiring again (a redelivered command) changes nothing.
    await runtime.retire_others(DEPLOYMENT, "chg_2")
    assert [c.id for c in containers(docker_engine, runtime)] == [second.id]


async def test_start_is_idempotent_and_a_new_worker_finds_the_containers(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    image: str,
    tmp_path: Path,
) -> None:
    spec = greeter(image, "chg_1")
    first, again = await asyncio.gather(runtime.start(spec), runtime.start(spec))
    assert again == first
    await runtime.route(DEPLOYMENT, ROUTE, first)

    # A new worker on the machine, after the one that started it died.
    next_worker = make_runtime(tmp_path, runtime.data_plane)
    assert await next_worker.start(spec) == first
    assert len(containers(docker_engine, runtime)) == 1
    assert await next_worker.deployments() == {DEPLOYMENT}

    # Its relay died with the old worker's machine, say: a new one, on a new port.
    relay = json.loads((tmp_path / "state" / DEPLOYMENT / "chg_1" / "relay.json").read_text())
    killed = psutil.Process(relay["pid"])
    killed.kill()
    await asyncio.to_thread(_gone, killed)
    rerouted = await next_worker.start(spec)
    assert rerouted.address != first.address
    await next_worker.route(DEPLOYMENT, ROUTE, rerouted)
    assert (await greeting(gateway))["greeting"] == "Hello"
    assert len(containers(docker_engine, runtime)) == 1

    # A container that died is started again for the same change, and says how it ended.
    (container,) = containers(docker_engine, runtime)
    container.kill()
    restarted = await next_worker.start(spec)
    assert restarted.restarted_after == "exited with code 137"
    await next_worker.route(DEPLOYMENT, ROUTE, restarted)
    assert (await greeting(gateway))["greeting"] == "Hello"
    assert len(containers(docker_engine, runtime)) == 1
    next_worker.close()


async def test_failures_say_why_and_leave_nothing_behind(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    image: str,
    tmp_path: Path,
) -> None:
    await deploy(runtime, greeter(image, "chg_1", greeting="Hello"))

    with pytest.raises(StartFailed) as crashed:
        await runtime.start(greeter(image, "chg_2", values={"GREETER_FAIL": "crash"}))
    assert "exited with code 3" in str(crashed.value)
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in str(crashed.value)

    with pytest.raises(StartFailed) as unhealthy:
        await runtime.start(
            greeter(image, "chg_3", values={"GREETER_FAIL": "unhealthy"}, health_timeout_s=2)
        )
    assert "did not become healthy within 2s: GET /healthz answered HTTP 503" in str(
        unhealthy.value
    )

    with pytest.raises(StartFailed, match="the engine has no image 'promenade-test/none:1'"):
        await runtime.start(greeter("promenade-test/none:1", "chg_4"))
    with pytest.raises(StartFailed, match="is not a container image reference"):
        await runtime.start(greeter("python3 /app/app.py", "chg_5"))

    # The old instance serves on; the failed ones left no container, files or relay.
    assert (await greeting(gateway))["greeting"] == "Hello"
    assert [c.labels["promenade.change"] for c in containers(docker_engine, runtime)] == ["chg_1"]
    assert sorted(p.name for p in (tmp_path / "files" / runtime.data_plane).iterdir()) == ["chg_1"]
    for change in ("chg_2", "chg_3"):
        assert not (tmp_path / "state" / DEPLOYMENT / change / "relay.json").exists()


async def test_an_instance_over_its_memory_limit_is_killed_and_that_is_said(
    tmp_path: Path, docker_engine: docker.DockerClient, image: str
) -> None:
    plane = f"dp_test{secrets.token_hex(6)}"
    runtime = make_runtime(tmp_path, plane, ContainerSettings.model_validate({"memoryMb": 64}))
    try:
        with pytest.raises(StartFailed) as failure:
            await runtime.start(greeter(image, "chg_1", values={"GREETER_FAIL": "memory"}))
        assert "was killed for running out of memory (the data plane's limit is 64 MiB)" in str(
            failure.value
        )
        assert "greeter: taking memory until stopped" in str(failure.value)
    finally:
        remove_containers(docker_engine, f"{LABEL_DATA_PLANE}={plane}")
        runtime.close()


async def test_stop_removes_the_route_the_containers_and_their_files(
    runtime: ContainerRuntime,
    gateway: httpx.AsyncClient,
    docker_engine: docker.DockerClient,
    image: str,
    tmp_path: Path,
) -> None:
    _, url = await deploy(runtime, greeter(image, "chg_1", values={"API_KEY": SECRET}))
    await greeting(gateway, url)
    logs = await runtime.logs(DEPLOYMENT)
    assert logs[0].startswith("greeter: listening on 127.0.0.1:8080")

    await runtime.stop(DEPLOYMENT, ROUTE)

    response = await gateway.get(url)
    assert response.status_code == 404
    assert containers(docker_engine, runtime) == []
    assert await runtime.deployments() == set()
    assert list((tmp_path / "files" / runtime.data_plane).iterdir()) == []
    await runtime.stop(DEPLOYMENT, ROUTE)  # idempotent


async def test_a_data_plane_may_name_only_an_engine_the_operator_allows(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, docker_host=docker_host())
    plane = ServedDataPlane(
        routing_key="dp_evil",
        runtime=RuntimeKind.CONTAINER,
        settings={"dockerHost": f"unix://{tmp_path}/organizations-own.sock"},
        label="evil/containers",
    )
    with pytest.raises(CannotServe, match="which this worker may not use"):
        await Runtimes(settings).runtime_for(plane)
    # The worker's own engine is allowed, and so is one the operator names.
    allowed = Settings(
        data_dir=tmp_path, docker_host=docker_host(), docker_hosts=f"unix://{tmp_path}/other.sock"
    )
    assert allowed.allowed_docker_hosts() == {docker_host(), f"unix://{tmp_path}/other.sock"}


class _Answered:
    """A container as an engine describes it; labels are whatever the engine says."""

    def __init__(self, labels: dict[str, str]) -> None:
        self.id = "c0ffee"
        self.labels = labels
        self.removed = False

    def remove(self, force: bool = False) -> None:
        self.removed = True


async def test_labels_that_name_no_change_of_this_data_plane_name_no_path(
    runtime: ContainerRuntime, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    for labels in (
        {LABEL_DATA_PLANE: runtime.data_plane, "promenade.change": "../../victim"},
        {LABEL_DATA_PLANE: runtime.data_plane, "promenade.change": str(victim)},
        {LABEL_DATA_PLANE: runtime.data_plane, "promenade.change": ".."},
        {LABEL_DATA_PLANE: "dp_another", "promenade.change": "chg_1"},
    ):
        container = _Answered({"promenade.deployment": "dep_1", **labels})
        await runtime._remove(None, container)  # type: ignore[arg-type]
        assert container.removed
    assert (victim / "precious").read_text() == "keep me"


async def test_files_of_containers_that_are_gone_are_collected(
    runtime: ContainerRuntime, docker_engine: docker.DockerClient, image: str, tmp_path: Path
) -> None:
    await runtime.start(greeter(image, "chg_1", values={"API_KEY": SECRET}))
    files = tmp_path / "files" / runtime.data_plane
    orphan, fresh = files / "chg_orphan", files / "chg_starting"
    for directory in (orphan, fresh):
        (directory / "secrets").mkdir(parents=True)
        (directory / "secrets" / "API_KEY").write_text(SECRET)
    old = time.time() - 3600
    os.utime(orphan, (old, old))

    await runtime.collect_garbage()

    assert not orphan.exists()
    assert fresh.exists()  # it may be a start under way
    assert (files / "chg_1").exists()  # its container runs
