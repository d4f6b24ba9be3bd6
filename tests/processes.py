"""Real ``promenade`` processes for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROMENADE = str(Path(sys.executable).parent / "promenade")
STARTUP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningPromenade:
    url: str
    process: subprocess.Popen[str]
    log_path: Path

    def first_stdout_line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()


def promenade_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}
    env["PROMENADE_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


@contextmanager
def running_promenade(
    command: str, data_dir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[RunningPromenade]:
    """``promenade <command>`` on a free port, until /healthz answers; stopped afterwards."""
    port = free_port()
    env = promenade_env(data_dir, {"PROMENADE_PORT": str(port), **(extra_env or {})})
    log_path = data_dir / f"promenade-{command}-{port}.log"
    # The log goes to a file: a pipe nobody reads would block the server once it fills.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [PROMENADE, command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=data_dir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log_path)
        yield RunningPromenade(url=url, process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def _wait_healthy(url: str, process: subprocess.Popen[str], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"promenade exited with {process.returncode}: {log_path.read_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"promenade did not answer at {url}/healthz: {log_path.read_text()}")
