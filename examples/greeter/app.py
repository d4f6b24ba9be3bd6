"""Greeter: a sample integration for Promenade (Python 3.11, stdlib only), as a command line
(LOCAL_PROCESS) or as a container image (CONTAINER: the Dockerfile beside it).

It listens on 127.0.0.1:$PORT ($PROMENADE_LISTEN_HOST instead, when set: a KUBERNETES data
plane sets 0.0.0.0) and answers ``GET /`` with values from its configuration:
GREETING, ENVIRONMENT_NAME, REPEAT, whether API_KEY is set (never its value: from the
environment, or from the file $PROMENADE_SECRETS_DIR/API_KEY, where the CONTAINER runtime puts
secrets), the keys of the TOML file at $PROMENADE_CONFIG_FILE and the names of the files in
$PROMENADE_SECRETS_DIR. ``GET /healthz`` is its health check.

GREETER_FAIL=crash makes it exit with code 3 at start; GREETER_FAIL=unhealthy makes /healthz
answer 503 forever; GREETER_FAIL=memory makes it take memory until its limit stops it. They
exist to show what a failed restart looks like. GREETER_FAIL=broken passes its health check but
answers ``GET /`` with 500: what a verification catches after the restart.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


def config_file_keys() -> list[str]:
    path = os.environ.get("PROMENADE_CONFIG_FILE")
    if not path:
        return []
    with open(path, "rb") as config:
        return sorted(tomllib.load(config))


def secret_files() -> list[str]:
    directory = os.environ.get("PROMENADE_SECRETS_DIR")
    if not directory or not os.path.isdir(directory):
        return []
    return sorted(os.listdir(directory))


def api_key() -> str | None:
    if os.environ.get("API_KEY"):
        return os.environ["API_KEY"]
    directory = os.environ.get("PROMENADE_SECRETS_DIR")
    if directory and os.path.isfile(os.path.join(directory, "API_KEY")):
        with open(os.path.join(directory, "API_KEY"), encoding="utf-8") as secret:
            return secret.read()
    return None


def greeting() -> dict[str, Any]:
    return {
        "greeting": os.environ.get("GREETING"),
        "environment": os.environ.get("ENVIRONMENT_NAME") or None,
        "repeat": int(os.environ.get("REPEAT") or 1),
        # Only whether it is set: the value of a secret never leaves the process.
        "has_api_key": bool(api_key()),
        "config_file_keys": config_file_keys(),
        "secret_files": secret_files(),
        "pid": os.getpid(),
    }


class Handler(BaseHTTPRequestHandler):
    server_version = "greeter/1"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            if os.environ.get("GREETER_FAIL") == "unhealthy":
                self.answer(503, "text/plain", b"unhealthy (GREETER_FAIL=unhealthy)")
            else:
                self.answer(200, "text/plain", b"ok")
        elif path == "/" and os.environ.get("GREETER_FAIL") == "broken":
            self.answer(500, "application/json", b'{"error": "broken (GREETER_FAIL=broken)"}')
        elif path == "/":
            self.answer(200, "application/json", json.dumps(greeting()).encode())
        else:
            self.answer(404, "application/json", b'{"error": "not found"}')

    def answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        print(f"greeter: {self.address_string()} {format % args}", flush=True)


def main() -> int:
    if os.environ.get("GREETER_FAIL") == "crash":
        print("greeter: refusing to start (GREETER_FAIL=crash)", flush=True)
        return 3
    if os.environ.get("GREETER_FAIL") == "memory":
        print("greeter: taking memory until stopped (GREETER_FAIL=memory)", flush=True)
        hoard = []
        while True:
            hoard.append(b"x" * (32 << 20))
    try:
        int(os.environ.get("REPEAT") or 1)
    except ValueError:
        print("greeter: REPEAT must be an integer", flush=True)
        return 2
    port = int(os.environ["PORT"])
    # A KUBERNETES data plane's probes and Service reach the pod's address, not its loopback.
    host = os.environ.get("PROMENADE_LISTEN_HOST") or "127.0.0.1"
    server = ThreadingHTTPServer((host, port), Handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: it cannot run on the thread that
        # is inside serve_forever(), which is the one this handler interrupts.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"greeter: listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print("greeter: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
