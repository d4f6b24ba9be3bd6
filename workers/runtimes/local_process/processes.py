"""The processes of LOCAL_PROCESS instances on this machine: whether a recorded pid is still
the process that was started (not another that got its pid since), and the strays of an
instance's user.

The start time and state come from ``/proc/<pid>/stat`` rather than psutil: psutil has the
state (``Process.status()``, from the same field), but gives the start time only in seconds
since the epoch, computed with the boot time, which moves when the clock is stepped (its own
docstring says so): an instance recorded before a step would then pass for another process.
The clock ticks since boot that the record keeps never change for a process.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


def kill_strays(uid: int, live: set[int]) -> None:
    """SIGKILL every process of ``uid`` that is none of ``live`` nor descends from one."""
    for process in psutil.process_iter(["uids", "status"]):
        try:
            if process.info["uids"].real != uid or process.pid in live:
                continue
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue  # ended already; its parent (or init) reaps it
            if any(parent.pid in live for parent in process.parents()):
                continue
            log.warning("killing process %d of uid %d, which no instance runs", process.pid, uid)
            process.kill()
        except psutil.Error:
            continue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat, or None without it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain anything: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def start_ticks_of(pid: int) -> int | None:
    stat = read_stat(pid)
    return None if stat is None else stat[1]


def pid_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process holds the pid now; /proc tells whether it is ours
    stat = read_stat(pid)
    if stat is None:
        # No /proc (not Linux): the pid exists, which is all that can be known.
        return not Path("/proc/self/stat").exists()
    state, ticks = stat
    if state in ("Z", "X"):  # exited, waiting for its parent to reap it
        return False
    return start_ticks is None or ticks == start_ticks
