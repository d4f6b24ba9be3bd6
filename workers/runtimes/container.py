"""The CONTAINER runtime: each instance is a container of a Docker Engine on the worker's machine.

An instance of change C of deployment D is the container ``promenade-<C>`` of the build's image:

- **Identity**: labels ``promenade.data-plane``, ``promenade.deployment``, ``promenade.change``
  and ``promenade.organization`` (ids, never configuration). A worker that restarts finds its
  containers by them: starting change C again returns the running container, never a second.
- **Confinement**: a non-root user (the image's numeric one, else the data plane's ``user``),
  a read-only root filesystem with a size-limited tmpfs at ``/tmp``, no new privileges, every
  capability dropped, memory (no swap beyond it), CPU and pids limits from the data plane's
  settings, logs capped by the engine, no restart policy (the supervisor decides), no mount of
  anything of the worker's but the instance's own read-only configuration.
- **Network**: none but the container's own loopback (``network_mode: none``): it cannot reach
  the worker, the database, the broker, the Docker socket, other containers or the internet.
  The gateway reaches it through a relay (``workers.runtimes.relay``), a process that listens
  on the host's 127.0.0.1 and opens its connections inside the container's network namespace.
  No bridge, no published port, no firewall rule: it works on an engine started with
  ``--bridge=none --iptables=false``.
- **Configuration**: non-secret values as environment variables; a read-only mount at
  ``/run/promenade`` with ``config.toml`` (the non-secret values), ``files/<FILE key>`` and
  ``secrets/<KEY>`` (``workers.runtimes.instance_files``). A secret is an environment variable
  too only when the image asks for it: ``LABEL io.promenade.secret-env="API_KEY,OTHER"`` (or
  ``*``). So ``docker inspect`` shows no secret an image did not ask to receive that way.
- **Replacement**: the new container starts, answers its health check through its relay, the
  route moves to it, and once requests routed just before the move had time to arrive
  (``ROUTE_SETTLE_S``) the old one is stopped (SIGTERM, the grace period, SIGKILL) and
  removed with its relay and its files. A container that fails is removed, and the reason
  (exit code, out of memory, the health check's answer, its last lines of output) is raised.

The worker must run as root on the engine's machine: it mounts files from its own disk and
enters the containers' network namespaces. Docker SDK calls block, so they run in threads.

State on the worker's machine: ``<state>/<deployment>/<change>/relay.json`` (the relay's pid and
port) and the instance's files under ``/run/promenade/containers/<change>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil
from docker.models.containers import Container
from docker.types import LogConfig, Mount

from app.services.dataplane_settings import ContainerSettings
from app.services.images import is_image_reference
from app.services.masking import with_output
from app.settings import DEFAULT_DOCKER_HOST
from workers.routes import GatewayRouted, RoutingTable, write_atomic
from workers.runtimes.base import ROUTE_SETTLE_S, Instance, InstanceSpec, StartFailed
from workers.runtimes.health import wait_healthy
from workers.runtimes.instance_files import files_of, remove_instance_files
from workers.runtimes.locks import file_lock
from workers.runtimes.output import output_lines

log = logging.getLogger(__name__)

DEFAULT_FILES_DIR = Path("/run/promenade/containers")
MOUNT_POINT = "/run/promenade"
SECRET_ENV_LABEL = "io.promenade.secret-env"
OUTPUT_TAIL_LINES = 20
RELAY_FILE = "relay.json"
RELAY_STOP_WAIT_S = 3.0
# Instance files without a container are removed once they are this old.
FILES_GRACE_S = 300.0
# Promenade's ids, and what tests use for them: letters, digits, "_", "-", "."; never "." or "..".
_ID = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.-]{1,64}$")
# How often a container's relay is started before the instance is given up.
RELAY_STARTS = 3

LABEL_DATA_PLANE = "promenade.data-plane"
LABEL_DEPLOYMENT = "promenade.deployment"
LABEL_CHANGE = "promenade.change"
LABEL_ORGANIZATION = "promenade.organization"


class _RelayStopped(Exception):
    """The relay to a running container ended (killed, say): another one is started."""


class EngineUnavailable(Exception):
    """The Docker Engine does not answer, or this worker cannot run containers isolated."""


@dataclass(frozen=True)
class _Relay:
    pid: int
    create_time: float
    port: int
    container_pid: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Running, and the process recorded (not another that got its pid); a zombie (ended,
        not yet reaped) does not count."""
        try:
            process = psutil.Process(self.pid)
            return (
                process.create_time() == self.create_time
                and process.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            return False


class ContainerRuntime(GatewayRouted):
    """Runs builds whose artifact is an image reference as containers behind the gateway."""

    def __init__(
        self,
        state_dir: Path,
        routes: RoutingTable,
        *,
        data_plane: str,
        settings: ContainerSettings,
        docker_host: str | None = None,
        files_dir: Path = DEFAULT_FILES_DIR,
    ) -> None:
        self.state_dir = state_dir
        self.routes = routes
        self.data_plane = data_plane
        self.settings = settings
        self.docker_host = settings.docker_host or docker_host or DEFAULT_DOCKER_HOST
        self.files_dir = files_dir
        self._client: docker.DockerClient | None = None

    # -- the engine --------------------------------------------------------------------------

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.docker_host, timeout=60)
        return self._client

    async def check(self) -> str:
        """The engine's version; EngineUnavailable says why containers cannot run here."""
        if os.geteuid() != 0:
            raise EngineUnavailable(
                "the CONTAINER runtime needs a worker that runs as root (it enters the "
                "containers' network namespaces to reach them)"
            )
        if shutil.which("nsenter") is None:
            raise EngineUnavailable("nsenter (util-linux) is not installed")
        try:
            version = await asyncio.to_thread(self._docker().version)
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(
                f"no Docker Engine answers at {self.docker_host}: {exc}"
            ) from exc
        return str(version.get("Version", "unknown"))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- the Runtime interface ---------------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> Instance:
        state = self._state_dir(spec.deployment_id, spec.change_id)
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Two starts of one change (a redelivered command racing its first delivery) queue
        # here; the second finds the first's container. flock goes away with a killed worker.
        async with file_lock(state / ".lock"):
            container = await self._container_of(spec.change_id)
            if container is not None and _running(container):
                relay = await self._healthy_through_relay(spec, state, container)
                return Instance(change_id=spec.change_id, address=relay.address)
            ended = None
            if container is not None:
                ended = await self._ended(container)
                await self._remove(state, container)
            instance = await self._launch(spec, state)
            return dataclasses.replace(instance, restarted_after=ended)

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        old = [
            container
            for container in await self._containers(deployment_id)
            if container.labels.get(LABEL_CHANGE) != keep_change_id
        ]
        if old:
            await asyncio.sleep(ROUTE_SETTLE_S)
        await asyncio.gather(*(self._retire(deployment_id, container) for container in old))
        self._forget_changes(deployment_id, keep={keep_change_id})

    async def stop(self, deployment_id: str, route: str) -> None:
        # The route goes first: the gateway answers 404 rather than 502 meanwhile.
        self.routes.remove_deployment(deployment_id)
        containers = await self._containers(deployment_id)
        await asyncio.gather(*(self._retire(deployment_id, c) for c in containers))
        self._forget_changes(deployment_id, keep=set())

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        if lines <= 0:
            return []
        containers = sorted(await self._containers(deployment_id), key=_created, reverse=True)
        collected: list[str] = []
        for container in containers:
            collected = await self._output(container, lines - len(collected)) + collected
            if len(collected) >= lines:
                break
        return collected[-lines:]

    async def deployments(self) -> set[str]:
        containers = await asyncio.to_thread(
            self._docker().containers.list,
            all=True,
            filters={"label": f"{LABEL_DATA_PLANE}={self.data_plane}"},
        )
        return {c.labels[LABEL_DEPLOYMENT] for c in containers if LABEL_DEPLOYMENT in c.labels}

    # -- starting ----------------------------------------------------------------------------

    async def _launch(self, spec: InstanceSpec, state: Path) -> Instance:
        if not is_image_reference(spec.artifact):
            raise StartFailed(
                f"the build's artifact {spec.artifact!r} is not a container image reference, "
                "which a CONTAINER data plane runs"
            )
        image = await self._image(spec.artifact)
        uid, gid = self._user_of(image)
        files_root = self._files_root(spec.change_id)
        files = files_of(spec, files_root, secrets_in_config=False, group=gid)
        inside = Path(MOUNT_POINT)
        environment = {
            key: value
            for key, value in spec.values.items()
            if key not in spec.file_keys and key not in spec.secret_keys
        }
        wanted = _secrets_wanted(image.labels or {}, spec.secret_keys)
        environment.update({key: spec.values[key] for key in wanted if key in spec.values})
        environment.update(
            PORT=str(self.settings.port),
            PROMENADE_CONFIG_FILE=str(inside / files.config_file.relative_to(files_root)),
            PROMENADE_FILES_DIR=str(inside / files.files_dir.relative_to(files_root)),
            PROMENADE_SECRETS_DIR=str(inside / files.secrets_dir.relative_to(files_root)),
        )
        try:
            container = await asyncio.to_thread(
                self._docker().containers.create,
                image.id,
                name=f"promenade-{spec.change_id}",
                environment=[f"{key}={value}" for key, value in environment.items()],
                labels={
                    LABEL_DATA_PLANE: self.data_plane,
                    LABEL_DEPLOYMENT: spec.deployment_id,
                    LABEL_CHANGE: spec.change_id,
                    LABEL_ORGANIZATION: spec.organization_id,
                },
                user=f"{uid}:{gid}",
                network_mode="none",
                read_only=True,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                mem_limit=f"{self.settings.memory_mb}m",
                memswap_limit=f"{self.settings.memory_mb}m",
                nano_cpus=int(self.settings.cpus * 1e9),
                pids_limit=self.settings.pids,
                tmpfs=_tmpfs(self.settings.tmpfs_mb),
                mounts=[Mount(MOUNT_POINT, str(files_root), type="bind", read_only=True)],
                log_config=LogConfig(
                    type=LogConfig.types.JSON, config={"max-size": "1m", "max-file": "2"}
                ),
                # No restart policy (the engine's default): the supervisor restarts what
                # should run, and the engine doing it too would race it.
                stop_signal="SIGTERM",
                detach=True,
            )
        except docker.errors.APIError as exc:
            remove_instance_files(files_root)
            raise StartFailed(f"the engine refused the container: {_explain(exc)}") from None
        try:
            await asyncio.to_thread(container.start)
            await asyncio.to_thread(container.reload)
            if not _running(container):
                raise StartFailed(await self._ended(container))
            relay = await self._healthy_through_relay(spec, state, container)
        except BaseException:
            await self._remove(state, container)
            raise
        return Instance(change_id=spec.change_id, address=relay.address)

    async def _image(self, reference: str) -> Any:
        try:
            return await asyncio.to_thread(self._docker().images.get, reference)
        except docker.errors.ImageNotFound:
            raise StartFailed(
                f"the engine has no image {reference!r}: Promenade never pulls, so load or "
                "build it into the engine first (docker load, docker build, docker pull)"
            ) from None
        except docker.errors.APIError as exc:
            raise StartFailed(f"cannot read the image {reference!r}: {_explain(exc)}") from None

    def _user_of(self, image: Any) -> tuple[int, int]:
        """The image's own user when it names a numeric non-root one, else the setting's."""
        user = str((image.attrs.get("Config") or {}).get("User") or "")
        uid_text, _, gid_text = user.partition(":")
        if uid_text.isdigit() and int(uid_text) != 0:
            uid = int(uid_text)
            gid = int(gid_text) if gid_text.isdigit() and int(gid_text) != 0 else uid
            return uid, gid
        return self.settings.uid, self.settings.gid

    async def _start_relay(self, state: Path, container: Container) -> _Relay:
        """A relay from a new port of the host's loopback to the container's port."""
        old = _read_relay(state)
        if old is not None:
            await _stop_process(old)
        container_pid = _pid(container)
        process, port = _spawn_relay(container_pid, self.settings.port)
        relay = _Relay(
            pid=process.pid,
            create_time=psutil.Process(process.pid).create_time(),
            port=port,
            container_pid=container_pid,
        )
        write_atomic(state / RELAY_FILE, json.dumps(relay.__dict__) + "\n")
        return relay

    async def _healthy_through_relay(
        self, spec: InstanceSpec, state: Path, container: Container
    ) -> _Relay:
        """The running container's relay (a new one if it has none, or its relay stopped),
        once the container answers its health check through it."""
        relay = _read_relay(state)
        for _ in range(RELAY_STARTS):
            if relay is None or not relay.alive() or relay.container_pid != _pid(container):
                relay = await self._start_relay(state, container)
            try:
                await self._wait_healthy(spec, container, relay)
            except _RelayStopped:
                relay = None
                continue
            return relay
        raise StartFailed(f"its relay stopped {RELAY_STARTS} times (the worker's log says why)")

    async def _wait_healthy(self, spec: InstanceSpec, container: Container, relay: _Relay) -> None:
        async def exit_status() -> str | None:
            await asyncio.to_thread(container.reload)
            if not _running(container):
                return await self._ended(container)
            if not relay.alive():
                raise _RelayStopped
            return None

        try:
            await wait_healthy(
                address=relay.address,
                path=spec.health_path,
                timeout_s=spec.health_timeout_s,
                exit_status=exit_status,
            )
        except StartFailed as failure:
            tail = await self._output(container, OUTPUT_TAIL_LINES)
            raise StartFailed(with_output(str(failure), failure.output + tail)) from None

    async def _ended(self, container: Container) -> str:
        """How a container that does not run any more ended."""
        state = container.attrs.get("State") or {}
        if state.get("OOMKilled"):
            return (
                f"was killed for running out of memory (the data plane's limit is "
                f"{self.settings.memory_mb} MiB)"
            )
        code = state.get("ExitCode")
        reason = f"exited with code {code}" if code is not None else "stopped"
        if state.get("Error"):
            reason += f": {state['Error']}"
        return reason

    async def _output(self, container: Container, lines: int) -> list[str]:
        if lines <= 0:
            return []
        try:
            raw = await asyncio.to_thread(container.logs, tail=lines, stdout=True, stderr=True)
        except docker.errors.DockerException:
            return []
        return output_lines(raw, lines)

    # -- stopping ----------------------------------------------------------------------------

    async def _retire(self, deployment_id: str, container: Container) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            await asyncio.to_thread(container.stop, timeout=int(self.settings.stop_grace_seconds))
        await self._remove(None, container)

    async def _remove(self, state: Path | None, container: Container) -> None:
        """The container, its relay and its files go. Paths come from its labels only once they
        are checked to name a change of this data plane (an engine's answers are not trusted
        to name paths)."""
        with contextlib.suppress(docker.errors.NotFound):
            await asyncio.to_thread(container.remove, force=True)
        labels = container.labels or {}
        change_id = labels.get(LABEL_CHANGE, "")
        deployment_id = labels.get(LABEL_DEPLOYMENT, "")
        if labels.get(LABEL_DATA_PLANE) != self.data_plane or not (
            _ID.match(change_id) and _ID.match(deployment_id)
        ):
            log.warning("container %s has labels of no change of ours: %s", container.id, labels)
            return
        state = state or self._state_dir(deployment_id, change_id)
        relay = _read_relay(state)
        if relay is not None:
            await _stop_process(relay)
            (state / RELAY_FILE).unlink(missing_ok=True)
        remove_instance_files(self._files_root(change_id))

    async def collect_garbage(self) -> None:
        """Files of instances whose containers are gone (a worker killed while it removed
        one, say), once they are older than a start could take."""
        root = self.files_dir / self.data_plane
        try:
            entries = list(root.iterdir())
        except FileNotFoundError:
            return
        containers = await asyncio.to_thread(
            self._docker().containers.list,
            all=True,
            filters={"label": f"{LABEL_DATA_PLANE}={self.data_plane}"},
        )
        have = {c.labels.get(LABEL_CHANGE) for c in containers}
        cutoff = time.time() - FILES_GRACE_S
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.name not in have and entry.stat().st_mtime < cutoff:
                    remove_instance_files(entry)

    def _forget_changes(self, deployment_id: str, *, keep: set[str]) -> None:
        """State directories of changes whose containers are gone."""
        deployment_dir = self.state_dir / deployment_id
        with contextlib.suppress(FileNotFoundError):
            for change_dir in deployment_dir.iterdir():
                if change_dir.name not in keep and not (change_dir / RELAY_FILE).exists():
                    shutil.rmtree(change_dir, ignore_errors=True)

    # -- lookups -----------------------------------------------------------------------------

    async def _container_of(self, change_id: str) -> Container | None:
        found = await asyncio.to_thread(
            self._docker().containers.list,
            all=True,
            filters={
                "label": [f"{LABEL_CHANGE}={change_id}", f"{LABEL_DATA_PLANE}={self.data_plane}"]
            },
        )
        return found[0] if found else None

    async def _containers(self, deployment_id: str) -> list[Container]:
        found: list[Container] = await asyncio.to_thread(
            self._docker().containers.list,
            all=True,
            filters={
                "label": [
                    f"{LABEL_DEPLOYMENT}={deployment_id}",
                    f"{LABEL_DATA_PLANE}={self.data_plane}",
                ]
            },
        )
        return found

    def _state_dir(self, deployment_id: str, change_id: str) -> Path:
        return self.state_dir / _name(deployment_id) / _name(change_id)

    def _files_root(self, change_id: str) -> Path:
        """Where an instance's files are: a directory per data plane and change, under a base
        that instances can traverse but not list."""
        plane = self.files_dir / _name(self.data_plane)
        for directory in (self.files_dir.parent, self.files_dir, plane):
            directory.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chmod(directory, 0o711)
        return plane / _name(change_id)


# -- helpers ---------------------------------------------------------------------------------


def _name(name: str) -> str:
    """An id (of a deployment, change or data plane) that is safe as one path component."""
    if not _ID.match(name):
        raise ValueError(f"{name!r} cannot name a directory")
    return name


def _spawn_relay(container_pid: int, port: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``workers.runtimes.relay`` in the container's network namespace with a socket
    that listens on a free port of the host's loopback; returns it and that port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        host_port = int(listener.getsockname()[1])
        fd = listener.fileno()
        command = [
            "nsenter",
            f"--net=/proc/{container_pid}/ns/net",
            "--",
            sys.executable,
            "-m",
            "workers.runtimes.relay",
            f"--fd={fd}",
            f"--port={port}",
            f"--watch-pid={container_pid}",
        ]
        try:
            # A clean environment: nothing of the worker's settings goes along.
            process = subprocess.Popen(
                command,
                pass_fds=(fd,),
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise StartFailed(f"could not start the relay to the container: {exc}") from None
    finally:
        listener.close()
    # Reaped by a thread of its own, so that it never lingers as a zombie.
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
    return process, host_port


def _running(container: Container) -> bool:
    return bool((container.attrs.get("State") or {}).get("Running"))


def _pid(container: Container) -> int:
    pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
    if pid <= 1:
        raise StartFailed("the container has no process")
    return pid


def _created(container: Container) -> str:
    return str(container.attrs.get("Created", ""))


def _tmpfs(size_mb: int) -> dict[str, str]:
    if size_mb <= 0:
        return {}
    return {"/tmp": f"rw,nosuid,nodev,size={size_mb}m,mode=1777"}


def _secrets_wanted(labels: dict[str, str], secret_keys: frozenset[str]) -> frozenset[str]:
    """The secret keys the image asks to receive as environment variables too."""
    asked = {part.strip() for part in labels.get(SECRET_ENV_LABEL, "").split(",") if part.strip()}
    return secret_keys if "*" in asked else secret_keys & asked


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)


def _read_relay(state: Path) -> _Relay | None:
    try:
        data = json.loads((state / RELAY_FILE).read_text())
        return _Relay(
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            port=int(data["port"]),
            container_pid=int(data["container_pid"]),
        )
    except (FileNotFoundError, ValueError, KeyError):
        return None


async def _stop_process(relay: _Relay) -> None:
    if not relay.alive():
        return
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(relay.pid)
        process.terminate()
        deadline = time.monotonic() + RELAY_STOP_WAIT_S
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                process.kill()
                break
            await asyncio.sleep(0.02)
