"""The runtime a worker drives for each data plane it serves, by the data plane's runtime kind."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.models import RuntimeKind
from app.services.dataplane_settings import container_settings, kubernetes_settings
from app.services.dataplanes import ServedDataPlane
from app.services.errors import InvalidInput
from app.settings import Settings
from workers.routes import RoutingTable
from workers.runtimes.base import Runtime
from workers.runtimes.container import ContainerRuntime, EngineUnavailable
from workers.runtimes.local_process import LocalProcessRuntime
from workers.runtimes.local_users import LocalUsers, NoSandbox

log = logging.getLogger(__name__)


class CannotServe(Exception):
    """This worker cannot run the data plane's runtime; the message says why."""


# The runtime of a data plane a worker serves (CannotServe if it cannot).
RuntimeFor = Callable[[ServedDataPlane], Awaitable[Runtime]]


def always(runtime: Runtime) -> RuntimeFor:
    """The same runtime for every data plane (tests, benchmarks)."""

    async def runtime_for(plane: ServedDataPlane) -> Runtime:
        return runtime

    return runtime_for


@dataclass
class Runtimes:
    """Makes the runtime of a data plane. Every runtime of one worker machine writes the same
    routing table, which the machine's gateway serves."""

    settings: Settings
    # Whether LOCAL_PROCESS instances run as users of their own (the worker runs as root).
    users: LocalUsers | None = None
    sandbox_refusal: str | None = None
    _made: dict[str, Runtime] = field(default_factory=dict)

    @classmethod
    def for_settings(cls, settings: Settings) -> Runtimes:
        try:
            return cls(settings, users=LocalUsers.if_possible())
        except NoSandbox as refusal:
            return cls(settings, sandbox_refusal=str(refusal))

    @property
    def routes(self) -> RoutingTable:
        return RoutingTable(self.settings.runtime_dir, self.settings.resolved_gateway_url)

    async def runtime_for(self, plane: ServedDataPlane) -> Runtime:
        """The plane's runtime, or CannotServe."""
        if plane.routing_key in self._made:
            return self._made[plane.routing_key]
        runtime: Runtime
        if plane.runtime is RuntimeKind.LOCAL_PROCESS:
            runtime = LocalProcessRuntime(
                self.settings.runtime_dir,
                self.settings.resolved_gateway_url,
                users=self.users,
                routes=self.routes,
            )
        elif plane.runtime is RuntimeKind.CONTAINER:
            try:
                options = container_settings(plane.settings)
            except InvalidInput as exc:
                raise CannotServe(f"data plane {plane.label}: {exc}") from None
            allowed = self.settings.allowed_docker_hosts()
            if options.docker_host is not None and options.docker_host not in allowed:
                raise CannotServe(
                    f"data plane {plane.label} names the Docker Engine {options.docker_host}, "
                    "which this worker may not use (the operator allows engines with "
                    "PROMENADE_DOCKER_HOSTS)"
                )
            container = ContainerRuntime(
                self.settings.containers_dir,
                self.routes,
                data_plane=plane.routing_key,
                settings=options,
                docker_host=self.settings.docker_host,
            )
            try:
                version = await container.check()
            except EngineUnavailable as exc:
                container.close()
                raise CannotServe(f"data plane {plane.label}: {exc}") from None
            log.info(
                "data plane %s: Docker Engine %s at %s", plane.label, version, container.docker_host
            )
            runtime = container
        elif plane.runtime is RuntimeKind.KUBERNETES:
            runtime = await self._kubernetes(plane)
        else:
            raise CannotServe(
                f"data plane {plane.label}: no worker runtime for {plane.runtime.value} yet"
            )
        self._made[plane.routing_key] = runtime
        return runtime

    async def _kubernetes(self, plane: ServedDataPlane) -> Runtime:
        # Imported here: the Kubernetes client takes 0.46 s to import, which only the workers
        # that serve a KUBERNETES data plane pay.
        from workers.runtimes.kubernetes.runtime import (
            ClusterUnavailable,
            KubernetesApi,
            KubernetesRuntime,
            connect,
        )

        try:
            options = kubernetes_settings(plane.settings)
        except InvalidInput as exc:
            raise CannotServe(f"data plane {plane.label}: {exc}") from None
        # As with dockerHost: an organization's ADMIN must not point the operator's worker at
        # another cluster of its kubeconfig (another organization's, say).
        if options.context is not None and (
            options.context not in self.settings.allowed_kubernetes_contexts()
        ):
            raise CannotServe(
                f"data plane {plane.label} names the kubeconfig context {options.context}, "
                "which this worker may not use (the operator allows contexts with "
                "PROMENADE_KUBERNETES_CONTEXTS)"
            )
        try:
            client = await connect(options, kubeconfig=self.settings.kubeconfig)
        except ClusterUnavailable as exc:
            raise CannotServe(f"data plane {plane.label}: {exc}") from None
        runtime = KubernetesRuntime(
            KubernetesApi(client), data_plane=plane.routing_key, settings=options
        )
        try:
            version = await runtime.check()
        except ClusterUnavailable as exc:
            await client.close()
            raise CannotServe(f"data plane {plane.label}: {exc}") from None
        log.info("data plane %s: Kubernetes %s", plane.label, version)
        return runtime
