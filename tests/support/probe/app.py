"""A hostile integration, for the isolation tests: it looks for what an integration must not find
(the platform's secret key, database, broker, other organizations' secrets, the Docker socket)
and answers ``GET /`` with everything it could read, as JSON. The tests then look in that for
the secrets they know; the probe is told none of them. Standard library only.

Healthy at ``GET /healthz``; listens on 127.0.0.1:$PORT.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROOTS = ["/tmp", "/var", "/run", "/dev/shm", "/work", "/home", "/root", "/srv", "/opt", "/etc"]
INTERESTING = ("secret.key", "promenade.db", "routes.json", "instance.json", "config.toml")
SUFFIXES = (".db", ".key", ".toml", ".sock", ".pem")
DOCKER_SOCKETS = ["/var/run/docker.sock", "/run/docker.sock", "/run/promenade-test-docker.sock"]
PORTS = {"postgresql": 5432, "rabbitmq": 5672, "promenade api": 8000}
WALK_SECONDS = 8.0
READ_BYTES = 65_536


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read(READ_BYTES).decode("utf-8", errors="replace")


def processes() -> dict[str, Any]:
    """Every other process's environment and command line that can be read."""
    readable: dict[str, Any] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for part in ("environ", "cmdline"):
            with contextlib.suppress(OSError):
                readable[f"{pid}/{part}"] = _read(f"/proc/{pid}/{part}").replace("\0", "\n")
    return readable


def files() -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    sockets: list[str] = []
    deadline = time.monotonic() + WALK_SECONDS
    for root in ROOTS:
        for directory, subdirectories, names in os.walk(root):
            if time.monotonic() > deadline:
                return found, sockets
            subdirectories[:] = [d for d in subdirectories if d not in (".git", ".venv")]
            for name in names:
                path = os.path.join(directory, name)
                if name.endswith(".sock"):
                    sockets.append(path)
                if name in INTERESTING or name.endswith(SUFFIXES):
                    with contextlib.suppress(OSError):
                        found[path] = _read(path)
    return found, sockets


def docker_sockets(more: list[str]) -> dict[str, str]:
    """The unix sockets that answered an HTTP request for /version (as Docker's does)."""
    answered = {}
    for path in DOCKER_SOCKETS + more:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(2)
                client.connect(path)
                client.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = client.recv(200).decode("latin-1")
            if answer.startswith("HTTP/"):
                answered[path] = answer
        except OSError:
            pass
    return answered


def ports() -> dict[str, bool]:
    reachable = {}
    for name, port in PORTS.items():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                reachable[name] = True
        except OSError:
            reachable[name] = False
    return reachable


def findings() -> dict[str, Any]:
    found, sockets = files()
    return {
        "uid": os.getuid(),
        "environment": dict(os.environ),
        "processes": processes(),
        "files": found,
        "docker": docker_sockets(sockets),
        "ports": ports(),
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/healthz":
            body, kind = b"ok", "text/plain"
        else:
            body, kind = json.dumps(findings()).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
