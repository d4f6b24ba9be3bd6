"""What the LOCAL_PROCESS runtime keeps of an instance, in
``<state>/<deployment>/<change>/``: its record (``instance.json``: pid, port, start time,
state) and its output (``output.log``, kept after it stops). A worker that restarts, or
another worker on the machine, knows the instance from these files alone."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.routes import write_atomic
from workers.runtimes.instance_files import remove_instance_files
from workers.runtimes.output import MAX_READ_BYTES, output_lines

INSTANCE_FILE = "instance.json"
OUTPUT_FILE = "output.log"


@dataclass(frozen=True)
class InstanceRecord:
    """The contents of instance.json."""

    deployment_id: str
    change_id: str
    pid: int
    port: int
    # The kernel's start time of the pid (clock ticks since boot, /proc/<pid>/stat field 22):
    # a pid reused by another process after ours died does not pass for ours.
    start_ticks: int | None
    started_at: float
    # starting (launched, not yet healthy), running, failed or stopped.
    state: str
    # Where this run's output begins in output.log (a restarted change appends to it).
    log_offset: int
    stopped_at: float | None = None
    # Where its configuration files are (removed when it stops).
    files_root: str | None = None
    # The uid it runs as, when not the worker's own.
    uid: int | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "change_id": self.change_id,
            "pid": self.pid,
            "port": self.port,
            "address": self.address,
            "start_ticks": self.start_ticks,
            "started_at": self.started_at,
            "state": self.state,
            "log_offset": self.log_offset,
            "stopped_at": self.stopped_at,
            "files_root": self.files_root,
            "uid": self.uid,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstanceRecord:
        pid = int(data["pid"])
        # Never pid 0 or 1: os.kill(0, ...) and os.killpg(0, ...) would signal our own group.
        if pid <= 1:
            raise ValueError(f"implausible pid {pid}")
        ticks = data.get("start_ticks")
        stopped_at = data.get("stopped_at")
        uid = data.get("uid")
        return cls(
            deployment_id=str(data["deployment_id"]),
            change_id=str(data["change_id"]),
            pid=pid,
            port=int(data["port"]),
            start_ticks=None if ticks is None else int(ticks),
            started_at=float(data["started_at"]),
            state=str(data["state"]),
            log_offset=int(data.get("log_offset", 0)),
            stopped_at=None if stopped_at is None else float(stopped_at),
            files_root=data.get("files_root"),
            uid=None if uid is None else int(uid),
        )

    def with_state(self, state: str) -> InstanceRecord:
        stopped_at = time.time() if state == "stopped" else self.stopped_at
        return dataclasses.replace(self, state=state, stopped_at=stopped_at)


def read_record(instance_dir: Path) -> InstanceRecord | None:
    try:
        return InstanceRecord.from_json(json.loads((instance_dir / INSTANCE_FILE).read_text()))
    except FileNotFoundError:
        return None


def write_record(instance_dir: Path, record: InstanceRecord) -> None:
    write_atomic(instance_dir / INSTANCE_FILE, json.dumps(record.to_json(), indent=2) + "\n")


def instance_dirs(deployment_dir: Path) -> list[Path]:
    try:
        return sorted(p for p in deployment_dir.iterdir() if p.is_dir())
    except FileNotFoundError:
        return []


def path_component(name: str, what: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"{what} {name!r} cannot name a directory")
    return name


def remove_files(record: InstanceRecord) -> None:
    if record.files_root is not None:
        remove_instance_files(Path(record.files_root))


def tail(path: Path, lines: int, *, start: int = 0) -> list[str]:
    """The last ``lines`` lines of a file from byte ``start`` on, read from the end (at most
    MAX_READ_BYTES of it)."""
    if lines <= 0:
        return []
    chunks: list[bytes] = []
    newlines = read = 0
    try:
        with path.open("rb") as log:
            position = log.seek(0, os.SEEK_END)
            while position > start and newlines <= lines and read < MAX_READ_BYTES:
                step = min(65_536, position - start, MAX_READ_BYTES - read)
                position -= step
                log.seek(position)
                chunk = log.read(step)
                chunks.append(chunk)
                newlines += chunk.count(b"\n")
                read += step
    except FileNotFoundError:
        return []
    return output_lines(b"".join(reversed(chunks)), lines)
