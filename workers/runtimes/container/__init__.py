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

The driver is ``runtime`` (``ContainerRuntime``); what a container is created with,
``confinement``; the relays, ``relays``. State on the worker's machine:
``<state>/<deployment>/<change>/relay.json`` (the relay's pid and port) and the instance's
files under ``/run/promenade/containers/<change>``.
"""

from workers.runtimes.container.runtime import (
    LABEL_CHANGE,
    LABEL_DATA_PLANE,
    LABEL_DEPLOYMENT,
    LABEL_ORGANIZATION,
    ContainerRuntime,
    EngineUnavailable,
)

__all__ = [
    "LABEL_CHANGE",
    "LABEL_DATA_PLANE",
    "LABEL_DEPLOYMENT",
    "LABEL_ORGANIZATION",
    "ContainerRuntime",
    "EngineUnavailable",
]
