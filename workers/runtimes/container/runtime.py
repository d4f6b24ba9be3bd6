"""The CONTAINER runtime's driver: starting, routing to, retiring and finding the containers of
instances (the package's docstring says what they are); what they are created with is
``confinement``, how the gateway reaches them ``relays``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from app.services.dataplane_settings import ContainerSettings
from app.services.images import is_image_reference
from app.services.masking import with_output
from app.settings import DEFAULT_DOCKER_HOST
from workers.routes import GatewayRouted, RoutingTable
from workers.runtimes.base import ROUTE_SETTLE_S, Instance, InstanceSpec, StartFailed
from workers.runtimes.container.confinement import confinement, environment_of, user_of
from workers.runtimes.container.relays import (
    RELAY_FILE,
    Relay,
    RelayStopped,
    read_relay,
    start_relay,
    stop_relay,
)
from workers.runtimes.health import wait_healthy
from workers.runtimes.instance_files import files_of, remove_instance_files
from workers.runtimes.locks import file_lock
from workers.runtimes.output import output_lines

log = logging.getLogger(__name__)

DEFAULT_FILES_DIR = Path("/run/promenade/containers")
OUTPUT_TAIL_LINES = 20
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


class EngineUnavailable(Exception):
    """The Docker Engine does not answer, or this worker cannot run containers isolated."""


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
        containers = await self._listed()
        return {c.labels[LABEL_DEPLOYMENT] for c in containers if LABEL_DEPLOYMENT in c.labels}

    # -- starting ----------------------------------------------------------------------------

    async def _launch(self, spec: InstanceSpec, state: Path) -> Instance:
        if not is_image_reference(spec.artifact):
            raise StartFailed(
                f"the build's artifact {spec.artifact!r} is not a container image reference, "
                "which a CONTAINER data plane runs"
            )
        image = await self._image(spec.artifact)
        uid, gid = user_of(image, self.settings)
        files_root = self._files_root(spec.change_id)
        files = files_of(spec, files_root, secrets_in_config=False, group=gid)
        environment = environment_of(spec, image, files, files_root, self.settings.port)
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
                detach=True,
                **confinement(self.settings, uid=uid, gid=gid, files_root=files_root),
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

    async def _healthy_through_relay(
        self, spec: InstanceSpec, state: Path, container: Container
    ) -> Relay:
        """The running container's relay (a new one if it has none, or its relay stopped),
        once the container answers its health check through it."""
        relay = read_relay(state)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RelayStopped),
                stop=stop_after_attempt(RELAY_STARTS),
                reraise=True,
            ):
                with attempt:
                    if relay is None or not relay.alive() or relay.container_pid != _pid(container):
                        relay = await start_relay(state, _pid(container), self.settings.port)
                    await self._wait_healthy(spec, container, relay)
        except RelayStopped:
            raise StartFailed(
                f"its relay stopped {RELAY_STARTS} times (the worker's log says why)"
            ) from None
        assert relay is not None
        return relay

    async def _wait_healthy(self, spec: InstanceSpec, container: Container, relay: Relay) -> None:
        async def exit_status() -> str | None:
            await asyncio.to_thread(container.reload)
            if not _running(container):
                return await self._ended(container)
            if not relay.alive():
                raise RelayStopped
            return None

        try:
            await wait_healthy(spec, address=relay.address, exit_status=exit_status)
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
        relay = read_relay(state)
        if relay is not None:
            await stop_relay(relay)
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
        containers = await self._listed()
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
        found = await self._listed(f"{LABEL_CHANGE}={change_id}")
        return found[0] if found else None

    async def _containers(self, deployment_id: str) -> list[Container]:
        return await self._listed(f"{LABEL_DEPLOYMENT}={deployment_id}")

    async def _listed(self, *labels: str) -> list[Container]:
        """This data plane's containers, stopped ones too, that carry every label given."""
        found: list[Container] = await asyncio.to_thread(
            self._docker().containers.list,
            all=True,
            filters={"label": [f"{LABEL_DATA_PLANE}={self.data_plane}", *labels]},
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


def _running(container: Container) -> bool:
    return bool((container.attrs.get("State") or {}).get("Running"))


def _pid(container: Container) -> int:
    pid = int((container.attrs.get("State") or {}).get("Pid") or 0)
    if pid <= 1:
        raise StartFailed("the container has no process")
    return pid


def _created(container: Container) -> str:
    return str(container.attrs.get("Created", ""))


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)
