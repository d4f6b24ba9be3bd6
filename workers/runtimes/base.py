"""The interface every runtime driver implements (LOCAL_PROCESS, CONTAINER; KUBERNETES later).

The step machine calls it in this order for a change: ``start`` (idempotent by change id, it
returns once the instance answers its health check), ``route`` (traffic goes to the new
instance), ``retire_others`` (the old instances stop). A worker killed anywhere in between
leaves state that the next worker's identical calls pick up without starting anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# How long old instances keep running after the route moved to the new one: a request that
# the gateway routed just before the move (the route read, the connection not yet made) still
# reaches a live instance. On a loaded machine that gap grows; this is its bound.
ROUTE_SETTLE_S = 0.5


@dataclass(frozen=True)
class InstanceSpec:
    """What to run for one change of one deployment."""

    deployment_id: str
    # The instance's identity: starting the same change again finds the instance it started.
    change_id: str
    # What the build says to run: for LOCAL_PROCESS a command line, for CONTAINER an image.
    artifact: str
    # The configuration snapshot, plaintext (secrets included): it reaches only the runtime.
    values: Mapping[str, str]
    # Keys of ``values`` whose type is FILE: their value is written as a file at that path.
    file_keys: frozenset[str] = field(default_factory=frozenset)
    # Keys of ``values`` that are secret: written as files, never as labels or plain settings.
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    # Whose instance it is (LOCAL_PROCESS runs each organization as a user of its own).
    organization_id: str = ""
    # Where the gateway serves it: "/<org>/<dnsPrefix>/<project slug>/<integration slug>".
    route: str = ""
    health_path: str = "/healthz"
    health_timeout_s: float = 30.0


@dataclass(frozen=True)
class Instance:
    change_id: str
    address: str  # host:port the gateway forwards to
    # Set when ``start`` found the change's instance ended and started it again: how it ended
    # (an exit code, out of memory), for the supervisor to report.
    restarted_after: str | None = None


class StartFailed(Exception):
    """The instance did not start or did not become healthy. The message says why: the exit
    code or the health check's status, and the last lines of its output. ``output`` holds what
    the instance said that is not in its output yet (the body of its health check's answer),
    for the runtime to put with the output lines: only some roles may read those."""

    def __init__(self, reason: str, output: Sequence[str] = ()) -> None:
        super().__init__(reason)
        self.output = list(output)


class Runtime(Protocol):
    async def start(self, spec: InstanceSpec) -> Instance:
        """Start the instance for ``spec.change_id`` and wait until it is healthy; if one for
        that change runs already, return it. On failure nothing of the new instance is left
        running and StartFailed is raised; the deployment's current instance is untouched."""
        ...

    async def route(self, deployment_id: str, route: str, instance: Instance) -> str:
        """Send the route's traffic to the instance; returns the stable endpoint URL."""
        ...

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        """Stop every instance of the deployment but the one kept (SIGTERM, grace, SIGKILL)."""
        ...

    async def stop(self, deployment_id: str, route: str) -> None:
        """Stop all instances of the deployment and remove its route (suspend)."""
        ...

    def endpoint_url(self, route: str) -> str:
        """The URL a route is served at; it does not change across restarts."""
        ...

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        """The last lines of output of the deployment's instances, newest last."""
        ...

    async def deployments(self) -> set[str]:
        """The deployments that have instances (running or not yet removed) here: the
        supervisor stops those that should have none."""
        ...

    async def collect_garbage(self) -> None:
        """Remove what instances that are gone left behind (files of one whose worker was
        killed while it removed it, say). The supervisor calls it every round."""
        ...
