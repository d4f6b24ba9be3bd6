"""Real ``promenade`` processes for end-to-end tests, and the integration processes they start."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

PROMENADE = str(Path(sys.executable).parent / "promenade")
STARTUP_TIMEOUT_S = 30.0
# The Python that sample integrations run with: the machine's own. A worker that runs as root
# runs each organization's instances as a user of their own, who may not reach this project's
# virtual environment (on the project's machines, its Python lives in root's home directory).
INSTANCE_PYTHON = "/usr/bin/python3"
# What `promenade worker` prints once it consumes its data plane's queue.
WORKER_READY = "serves data plane"


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
    with running_server(
        [PROMENADE, command], data_dir, {"PROMENADE_PORT": str(port), **(extra_env or {})}, port
    ) as running:
        yield running


@contextmanager
def running_server(
    args: Sequence[str], data_dir: Path, extra_env: Mapping[str, str], port: int
) -> Iterator[RunningPromenade]:
    """A server process (``args``) that serves the API on ``port``, until /healthz answers;
    stopped (SIGTERM) afterwards."""
    env = promenade_env(data_dir, extra_env)
    log_path = data_dir / f"{Path(args[0]).name}-{port}.log"
    # The log goes to a file: a pipe nobody reads would block the server once it fills.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            list(args), env=env, stdout=subprocess.PIPE, stderr=log, text=True, cwd=data_dir
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


# ---- long-running processes without an HTTP API of their own: workers, the gateway -----------


@dataclass
class PromenadeProcess:
    """A ``promenade`` process whose output (stdout and stderr) goes to ``log_path``."""

    args: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until ``text`` appears in the output; fail if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"promenade {' '.join(self.args)} exited with {self.process.returncode} "
                    f"before printing {text!r}:\n{self.log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"promenade {' '.join(self.args)} did not print {text!r} within "
                    f"{timeout_s:g}s:\n{self.log()}"
                )
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as when a machine dies."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM (a worker drains), then SIGKILL after ``timeout_s``; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_promenade(
    args: Sequence[str], data_dir: Path, extra_env: Mapping[str, str] | None = None
) -> PromenadeProcess:
    """``promenade <args>`` in the background, its output in a log file of the data dir."""
    env = promenade_env(data_dir, extra_env)
    log_path = data_dir / f"promenade-{args[0]}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [PROMENADE, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
        )
    return PromenadeProcess(args=list(args), process=process, log_path=log_path)


def start_worker(
    data_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    data_plane: str | list[str] = "local",
    concurrency: int = 4,
    gateway: bool = False,
    pause_after_step: str | None = None,
    wait: bool = True,
) -> PromenadeProcess:
    """``promenade worker``, once it consumes its queue (unless ``wait`` is false: then call
    ``wait_for_log(WORKER_READY)``). ``pause_after_step`` sets PROMENADE_PAUSE_AFTER_STEP: the
    worker stops forever after that step of a change."""
    env = dict(extra_env or {})
    if pause_after_step is not None:
        env["PROMENADE_PAUSE_AFTER_STEP"] = pause_after_step
    planes = [data_plane] if isinstance(data_plane, str) else data_plane
    args = ["worker", *(f"--data-plane={plane}" for plane in planes)]
    args += ["--concurrency", str(concurrency)]
    if not gateway:
        args.append("--no-gateway")
    worker = start_promenade(args, data_dir, env)
    if wait:
        try:
            worker.wait_for_log(WORKER_READY)
        except BaseException:
            worker.kill()
            raise
    return worker


def start_gateway(
    data_dir: Path, extra_env: Mapping[str, str], gateway_port: int, *, wait: bool = True
) -> PromenadeProcess:
    """``promenade gateway`` on ``gateway_port``, once it answers its health check (unless
    ``wait`` is false: then call ``wait_for_gateway``)."""
    gateway = start_promenade(
        ["gateway"], data_dir, {**extra_env, "PROMENADE_GATEWAY_PORT": str(gateway_port)}
    )
    if wait:
        wait_for_gateway(gateway, gateway_port)
    return gateway


def wait_for_gateway(gateway: PromenadeProcess, gateway_port: int) -> None:
    url = f"http://127.0.0.1:{gateway_port}/_promenade/healthz"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if gateway.process.poll() is not None:
            raise AssertionError(f"promenade gateway exited:\n{gateway.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        if time.monotonic() > deadline:
            gateway.kill()
            raise AssertionError(f"promenade gateway did not answer at {url}:\n{gateway.log()}")
        time.sleep(0.05)


def run_promenade(
    args: Sequence[str],
    data_dir: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    expect_failure: bool = False,
) -> str:
    """``promenade <args>`` to completion (migrate, bootstrap); its stdout. Fails on an error;
    with ``expect_failure``, fails unless it exits 2, and returns its stderr."""
    result = subprocess.run(
        [PROMENADE, *args],
        env=promenade_env(data_dir, extra_env),
        capture_output=True,
        text=True,
        cwd=data_dir,
        timeout=60,
        check=False,
    )
    if expect_failure:
        assert result.returncode == 2, f"promenade {' '.join(args)}: {result.returncode}"
        return result.stderr
    assert result.returncode == 0, f"promenade {' '.join(args)}: {result.stderr}"
    return result.stdout


# ---- the integrations' processes ---------------------------------------------------------------


def instance_processes(runtime_dir: Path, deployment_id: str | None = None) -> list[int]:
    """Pids of the running processes that a LOCAL_PROCESS runtime under ``runtime_dir`` started
    (for one deployment, or for any), as its instance records name them."""
    pids = []
    for record in sorted(runtime_dir.glob(f"{deployment_id or '*'}/*/instance.json")):
        try:
            pid = int(json.loads(record.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            continue  # being written, or not a record
        if pid > 1 and process_runs(pid):
            pids.append(pid)
    return sorted(pids)


def process_runs(pid: int) -> bool:
    """The process exists and has not exited (a zombie has)."""
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def kill_instances(runtime_dir: Path, timeout_s: float = 10.0) -> None:
    """SIGKILL every process (group) the runtime started under ``runtime_dir``; wait until
    they are gone."""
    deadline = time.monotonic() + timeout_s
    while pids := instance_processes(runtime_dir):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise AssertionError(f"processes {pids} survived SIGKILL")
        time.sleep(0.05)
    # Their configuration files (secrets among them), which a killed worker did not remove.
    for record in runtime_dir.glob("*/*/instance.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            files = json.loads(record.read_text())["files_root"]
            if files:
                shutil.rmtree(files, ignore_errors=True)
