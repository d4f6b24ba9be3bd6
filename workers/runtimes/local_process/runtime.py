"""The LOCAL_PROCESS runtime's driver: starting, routing to, retiring and stopping the processes
of instances (the package's docstring says how they run); their records are ``records``, what
is known of their processes ``processes``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from app.services.masking import with_output
from workers.routes import GatewayRouted, RoutingTable
from workers.runtimes.base import ROUTE_SETTLE_S, Instance, InstanceSpec, StartFailed
from workers.runtimes.health import describe_exit, wait_healthy
from workers.runtimes.instance_files import files_of, remove_instance_files
from workers.runtimes.local_process.processes import (
    free_port,
    kill_strays,
    pid_alive,
    start_ticks_of,
)
from workers.runtimes.local_process.records import (
    OUTPUT_FILE,
    InstanceRecord,
    instance_dirs,
    path_component,
    read_record,
    remove_files,
    tail,
    write_record,
)
from workers.runtimes.local_users import LocalUsers
from workers.runtimes.locks import file_lock

log = logging.getLogger(__name__)

# How many lines of an instance's output a StartFailed message carries.
OUTPUT_TAIL_LINES = 20
# After SIGKILL, how long to wait for the kernel to take a process away.
KILL_WAIT_S = 5.0
# The whole environment an instance starts with, before its configuration: none of the
# worker's variables (they hold the installation's secret key and database URL).
CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"

# The instance's configuration files, when they are kept beside its record.
CONFIG_DIR = "config"
# How many stopped instances of a deployment keep their record and output (for its logs).
KEEP_STOPPED = 3


class LocalProcessRuntime(GatewayRouted):
    """Runs builds whose artifact is a command line as local processes behind the gateway.
    With ``users``, each organization's instances run as a Unix user of their own."""

    def __init__(
        self,
        state_dir: Path,
        gateway_url: str,
        *,
        grace_period_s: float = 10.0,
        users: LocalUsers | None = None,
        routes: RoutingTable | None = None,
        route_settle_s: float = ROUTE_SETTLE_S,
    ) -> None:
        self.state_dir = state_dir
        self.routes = routes or RoutingTable(state_dir, gateway_url)
        self.grace_period_s = grace_period_s
        # How long old instances keep running after the route moved (ROUTE_SETTLE_S).
        self.route_settle_s = route_settle_s
        self.users = users
        # Processes this object started, by pid. A thread per process waits for it, so that
        # its exit code is known and it never lingers as a zombie.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def routes_file(self) -> Path:
        """The routing table the gateway serves from."""
        return self.routes.path

    # -- the Runtime interface ---------------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> Instance:
        instance_dir = self._instance_dir(spec.deployment_id, spec.change_id)
        instance_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Two starts of one change (a redelivered command racing its first delivery) queue
        # here; the second finds the first's instance. flock goes away with a killed worker.
        async with file_lock(instance_dir / ".lock"):
            record = read_record(instance_dir)
            ended = None
            if record is not None:
                if record.state in ("starting", "running") and self._alive(record):
                    await self._wait_healthy(spec, instance_dir, record)
                    return Instance(change_id=spec.change_id, address=record.address)
                if record.state == "running":
                    ended = self._exit_status(record)
                await self._terminate(record)
            instance = await self._launch(spec, instance_dir)
            return dataclasses.replace(instance, restarted_after=ended)

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        deployment_dir = self._deployment_dir(deployment_id)
        old = [d for d in instance_dirs(deployment_dir) if d.name != keep_change_id]
        if any(self._runs(d) for d in old):
            await asyncio.sleep(self.route_settle_s)
        await asyncio.gather(*(self._retire(instance_dir) for instance_dir in old))
        self._after_retiring(deployment_dir)

    async def stop(self, deployment_id: str, route: str) -> None:
        # The route goes first: the gateway answers 404 rather than 502 while the
        # instances shut down.
        self.routes.remove_deployment(deployment_id)
        deployment_dir = self._deployment_dir(deployment_id)
        await asyncio.gather(*(self._retire(d) for d in instance_dirs(deployment_dir)))
        self._after_retiring(deployment_dir)

    def _after_retiring(self, deployment_dir: Path) -> None:
        """Whatever the deployment's user still runs outside its live instances goes (a child
        that left its instance's process group, say); of the stopped instances only the newest
        few are kept, for their logs."""
        records = [r for d in instance_dirs(deployment_dir) if (r := read_record(d))]
        live = {r.pid for r in records if r.state in ("starting", "running") and self._alive(r)}
        for uid in {r.uid for r in records if r.uid is not None}:
            kill_strays(uid, live)
        stopped = sorted(
            (r for r in records if r.state in ("stopped", "failed")),
            key=lambda r: r.started_at,
            reverse=True,
        )
        for old in stopped[KEEP_STOPPED:]:
            shutil.rmtree(self._instance_dir(old.deployment_id, old.change_id), ignore_errors=True)

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        return await asyncio.to_thread(self._logs, deployment_id, lines)

    async def deployments(self) -> set[str]:
        """Deployments that have an instance that has not stopped."""
        found = set()
        for deployment_dir in instance_dirs(self.state_dir):
            for instance_dir in instance_dirs(deployment_dir):
                record = read_record(instance_dir)
                if record is not None and record.state != "stopped":
                    found.add(record.deployment_id)
        return found

    async def collect_garbage(self) -> None:
        """Configuration files of instances that stopped without removing them."""
        for deployment_dir in instance_dirs(self.state_dir):
            for instance_dir in instance_dirs(deployment_dir):
                record = read_record(instance_dir)
                if record is not None and record.state in ("stopped", "failed"):
                    remove_files(record)

    def _logs(self, deployment_id: str, lines: int) -> list[str]:
        if lines <= 0:
            return []
        instances: list[tuple[float, Path]] = []
        for instance_dir in instance_dirs(self._deployment_dir(deployment_id)):
            record = read_record(instance_dir)
            log = instance_dir / OUTPUT_FILE
            if log.exists():
                started = record.started_at if record else log.stat().st_mtime
                instances.append((started, log))
        collected: list[str] = []
        # Newest instance first, until enough lines; then reversed to put the newest last.
        for _, log in sorted(instances, reverse=True):
            collected = tail(log, lines - len(collected)) + collected
            if len(collected) >= lines:
                break
        return collected[-lines:]

    # -- starting ----------------------------------------------------------------------------

    async def _launch(self, spec: InstanceSpec, instance_dir: Path) -> Instance:
        try:
            argv = shlex.split(spec.artifact)
        except ValueError as exc:
            raise StartFailed(f"the artifact is not a valid command line: {exc}") from None
        if not argv:
            raise StartFailed("the artifact is an empty command line")
        # Resolved here, on the clean PATH: a PATH among the values does not choose it.
        executable = shutil.which(argv[0], path=CLEAN_PATH)
        if executable is None:
            reason = "No such file or directory" if "/" in argv[0] else f"not found in {CLEAN_PATH}"
            raise StartFailed(f"could not run {argv[0]!r}: {reason}")
        uid = None
        files_root = instance_dir / CONFIG_DIR
        if self.users is not None:
            uid = self.users.uid_of(spec.deployment_id)
            files_root = self.users.instance_dir(spec.change_id)
        files = files_of(spec, files_root, secrets_in_config=True, group=uid)
        port = free_port()
        environment = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "HOME": str(files_root)}
        environment.update({k: v for k, v in spec.values.items() if k not in spec.file_keys})
        environment.update(
            PORT=str(port),
            PROMENADE_CONFIG_FILE=str(files.config_file),
            PROMENADE_FILES_DIR=str(files.files_dir),
            PROMENADE_SECRETS_DIR=str(files.secrets_dir),
        )
        try:
            process, log_offset = self._spawn(executable, argv, environment, instance_dir, uid)
        except StartFailed:
            remove_instance_files(files_root)
            raise
        record = InstanceRecord(
            deployment_id=spec.deployment_id,
            change_id=spec.change_id,
            pid=process.pid,
            port=port,
            start_ticks=start_ticks_of(process.pid),
            started_at=time.time(),
            state="starting",
            log_offset=log_offset,
            files_root=str(files_root),
            uid=uid,
        )
        write_record(instance_dir, record)
        await self._wait_healthy(spec, instance_dir, record)
        write_record(instance_dir, record.with_state("running"))
        return Instance(change_id=spec.change_id, address=record.address)

    def _spawn(
        self,
        executable: str,
        argv: list[str],
        environment: dict[str, str],
        instance_dir: Path,
        uid: int | None,
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Start the instance; with ``uid``, as that user (and group), with no other group.
        The child drops to it before it runs anything: no program runs as root with the
        instance's environment (its values could name LD_PRELOAD, say)."""
        log_fd = os.open(instance_dir / OUTPUT_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            log_offset = os.fstat(log_fd).st_size
            # No cwd: it runs in the worker's working directory, so a relative path in an
            # artifact resolves as it would in the shell that started the worker.
            process = subprocess.Popen(
                argv,
                executable=executable,
                env=environment,
                user=uid,
                group=uid,
                extra_groups=[] if uid is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
                # Its own session and process group: it outlives a killed worker, and stopping
                # it signals the whole group (whatever it started too).
                start_new_session=True,
                # What it creates (in /tmp, say) is its own: other users cannot read it.
                umask=0o077,
            )
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StartFailed(f"could not run {argv[0]!r}: {reason}") from None
        finally:
            os.close(log_fd)
        self._children[process.pid] = process
        threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
        return process, log_offset

    async def _wait_healthy(
        self, spec: InstanceSpec, instance_dir: Path, record: InstanceRecord
    ) -> None:
        """Returns once the health check answers 2xx; otherwise nothing of the instance is
        left running and StartFailed says why."""

        async def exit_status() -> str | None:
            return self._exit_status(record)

        try:
            await wait_healthy(spec, address=record.address, exit_status=exit_status)
        except StartFailed as failure:
            # Anything it left behind in its group goes too.
            await self._terminate(record)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, signal.SIGKILL)
            self._mark(instance_dir, record, "failed")
            remove_files(record)
            raise StartFailed(
                with_output(str(failure), failure.output + _output_tail(instance_dir, record))
            ) from None

    # -- stopping ----------------------------------------------------------------------------

    async def _retire(self, instance_dir: Path) -> None:
        record = read_record(instance_dir)
        if record is None:
            return
        await self._terminate(record)
        remove_files(record)
        if record.state != "stopped":
            self._mark(instance_dir, record, "stopped")

    async def _terminate(self, record: InstanceRecord) -> None:
        """SIGTERM to the instance's process group, the grace period, then SIGKILL."""
        if not self._alive(record):
            return
        try:
            os.killpg(record.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        await self._wait_gone(record, self.grace_period_s)
        # Also when the leader obeyed: whatever else is left in its group goes.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, signal.SIGKILL)
        if not await self._wait_gone(record, KILL_WAIT_S):
            raise RuntimeError(f"process {record.pid} survived SIGKILL for {KILL_WAIT_S}s")

    async def _wait_gone(self, record: InstanceRecord, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        # A poll, not a retry: nothing failed, the process is given time to exit.
        while self._alive(record):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- processes ---------------------------------------------------------------------------

    def _runs(self, instance_dir: Path) -> bool:
        record = read_record(instance_dir)
        return (
            record is not None and record.state in ("starting", "running") and self._alive(record)
        )

    def _alive(self, record: InstanceRecord) -> bool:
        child = self._children.get(record.pid)
        if child is not None:
            if child.returncode is None:
                return True
            del self._children[record.pid]
            return False
        return pid_alive(record.pid, record.start_ticks)

    def _exit_status(self, record: InstanceRecord) -> str | None:
        """None while the instance runs; else how it ended."""
        child = self._children.get(record.pid)
        if child is not None:
            code = child.returncode
            return None if code is None else describe_exit(code)
        if pid_alive(record.pid, record.start_ticks):
            return None
        # Started by a worker that is gone: its exit code went to whoever reaped it.
        return "exited (exit code unknown: it was started by an earlier worker)"

    def _mark(self, instance_dir: Path, record: InstanceRecord, state: str) -> None:
        write_record(instance_dir, record.with_state(state))

    # -- files -------------------------------------------------------------------------------

    def _deployment_dir(self, deployment_id: str) -> Path:
        return self.state_dir / path_component(deployment_id, "deployment id")

    def _instance_dir(self, deployment_id: str, change_id: str) -> Path:
        return self._deployment_dir(deployment_id) / path_component(change_id, "change id")


def _output_tail(instance_dir: Path, record: InstanceRecord) -> list[str]:
    return tail(instance_dir / OUTPUT_FILE, OUTPUT_TAIL_LINES, start=record.log_offset)
