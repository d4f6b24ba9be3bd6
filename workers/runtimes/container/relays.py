"""The relays through which the gateway reaches containers that have no network but their own
loopback: a process (``workers.runtimes.relay``) that listens on a port of the host's
127.0.0.1 and opens its connections inside the container's network namespace. Recorded in
``<state>/<deployment>/<change>/relay.json`` (its pid and port), so that a worker that restarts
finds it, and started again when it stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from workers.routes import write_atomic
from workers.runtimes.base import StartFailed

RELAY_FILE = "relay.json"
RELAY_STOP_WAIT_S = 3.0


class RelayStopped(Exception):
    """The relay to a running container ended (killed, say): another one is started."""


@dataclass(frozen=True)
class Relay:
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


async def start_relay(state: Path, container_pid: int, port: int) -> Relay:
    """A relay from a new port of the host's loopback to ``port`` of the container whose
    process is ``container_pid``; the one recorded before, if any, is stopped."""
    old = read_relay(state)
    if old is not None:
        await stop_relay(old)
    process, host_port = _spawn_relay(container_pid, port)
    relay = Relay(
        pid=process.pid,
        create_time=psutil.Process(process.pid).create_time(),
        port=host_port,
        container_pid=container_pid,
    )
    write_atomic(state / RELAY_FILE, json.dumps(relay.__dict__) + "\n")
    return relay


def read_relay(state: Path) -> Relay | None:
    try:
        data = json.loads((state / RELAY_FILE).read_text())
        return Relay(
            pid=int(data["pid"]),
            create_time=float(data["create_time"]),
            port=int(data["port"]),
            container_pid=int(data["container_pid"]),
        )
    except (FileNotFoundError, ValueError, KeyError):
        return None


async def stop_relay(relay: Relay) -> None:
    """SIGTERM, and SIGKILL when it is still there after RELAY_STOP_WAIT_S."""
    if not relay.alive():
        return
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(relay.pid)
        process.terminate()
        deadline = time.monotonic() + RELAY_STOP_WAIT_S
        # A poll, not a retry: nothing failed, the relay is given time to exit.
        while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
            if time.monotonic() > deadline:
                process.kill()
                break
            await asyncio.sleep(0.02)


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
