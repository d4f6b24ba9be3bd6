"""The gateway's routing table, ``routes.json``: route -> the instance that serves it.

Every runtime of a worker machine writes the same table (the gateway in front of them reads it,
``workers.gateway``), under an exclusive lock, since several workers of one machine share it:

    {"/<org>/<dnsPrefix>/<project>/<integration>":
        {"deployment_id": ..., "change_id": ..., "address": "127.0.0.1:<port>"}}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.runtimes.base import Instance

ROUTES_FILE = "routes.json"
LOCK_FILE = "routes.lock"


def normal_route(route: str) -> str:
    route = route.rstrip("/")
    if not route.startswith("/") or "//" in route or ".." in route.split("/"):
        raise ValueError(f"a route is an absolute path like /org/env/project/app: {route!r}")
    return route


class RoutingTable:
    def __init__(self, state_dir: Path, gateway_url: str) -> None:
        self.state_dir = state_dir
        self.gateway_url = gateway_url.rstrip("/")

    @property
    def path(self) -> Path:
        return self.state_dir / ROUTES_FILE

    def endpoint_url(self, route: str) -> str:
        return f"{self.gateway_url}{normal_route(route)}/"

    def route(self, route: str, *, deployment_id: str, change_id: str, address: str) -> str:
        """Send the route's traffic to ``address``; returns the endpoint URL."""
        route = normal_route(route)
        entry = {"deployment_id": deployment_id, "change_id": change_id, "address": address}

        def update(routes: dict[str, Any]) -> None:
            routes[route] = entry

        self._update(update)
        return self.endpoint_url(route)

    def remove_deployment(self, deployment_id: str) -> None:
        def update(routes: dict[str, Any]) -> None:
            for key in list(routes):
                entry = routes[key]
                if isinstance(entry, dict) and entry.get("deployment_id") == deployment_id:
                    del routes[key]

        self._update(update)

    def read(self) -> dict[str, Any]:
        try:
            routes = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        if not isinstance(routes, dict):
            raise RuntimeError(f"{self.path} does not hold a JSON object")
        return routes

    def _update(self, update: Callable[[dict[str, Any]], None]) -> None:
        """Read, change and write routes.json under an exclusive lock."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            routes = self.read()
            update(routes)
            write_atomic(self.path, json.dumps(routes, indent=2, sort_keys=True) + "\n")
        finally:
            os.close(lock_fd)  # closing releases the lock


class GatewayRouted:
    """What every runtime behind a machine's gateway does alike: route an instance, and say
    where a route is served. A runtime sets ``self.routes``."""

    routes: RoutingTable

    async def route(self, deployment_id: str, route: str, instance: Instance) -> str:
        return self.routes.route(
            route,
            deployment_id=deployment_id,
            change_id=instance.change_id,
            address=instance.address,
        )

    def endpoint_url(self, route: str) -> str:
        return self.routes.endpoint_url(route)


def write_atomic(path: Path, text: str) -> None:
    """A reader sees the old contents or the new ones, never half of them (mode 0600)."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
