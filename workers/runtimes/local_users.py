"""A Unix user of its own for each organization's LOCAL_PROCESS instances.

When the worker runs as root, an instance runs as the uid allotted to its organization (gid the
same number), with no supplementary groups, no new privileges and an empty capability bounding
set (``setpriv``, from util-linux). The uids have no /etc/passwd entry and come from a range no
account uses; the allotment is kept in one file per machine (``/var/lib/promenade``), so that
two installations on one machine never give two organizations the same uid.

What that user can read: its instance's configuration (root-owned, group-readable by its gid,
under ``/run/promenade/instances``, a tmpfs), the world-readable parts of the machine (the
build's own program, /usr, ...). What it cannot read: the data directory (0700), the secret
key, the database, other organizations' configuration files, the ``/proc/<pid>/environ`` of
the worker or of another organization's instances (the kernel allows that only to the same
uid), the Docker socket.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from workers.routes import write_atomic

# Far above the uids of accounts (and of the 65536 ids a user namespace maps), below 2**31.
FIRST_UID = 1_900_000_000
LAST_UID = 2_000_000_000
DEFAULT_REGISTRY = Path("/var/lib/promenade/local-users.json")
# A tmpfs on Linux: configuration files (secrets among them) never reach a disk.
DEFAULT_FILES_DIR = Path("/run/promenade/instances")


class NoSandbox(Exception):
    """Instances cannot get a user of their own here; the message says why."""


@dataclass(frozen=True)
class LocalUsers:
    registry: Path = DEFAULT_REGISTRY
    files_dir: Path = DEFAULT_FILES_DIR
    first_uid: int = FIRST_UID

    @classmethod
    def if_possible(cls) -> LocalUsers:
        """Users per organization, or NoSandbox saying what is missing."""
        if os.geteuid() != 0:
            raise NoSandbox(
                "the worker does not run as root, so LOCAL_PROCESS instances run as its own "
                "user and can read what it can (its environment and data directory included)"
            )
        if shutil.which("setpriv") is None:
            raise NoSandbox("setpriv (util-linux) is not installed")
        return cls()

    def prepare(self) -> None:
        """The machine-wide directories, traversable but not listable by instances."""
        for directory in (self.files_dir.parent, self.files_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o711)
        self.registry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def uid_of(self, organization_id: str) -> int:
        """The organization's uid, allotted on first use (under a lock: several workers of one
        machine share the registry)."""
        self.prepare()
        lock_fd = os.open(self.registry.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                allotted: dict[str, int] = json.loads(self.registry.read_text())
            except FileNotFoundError:
                allotted = {}
            if organization_id in allotted:
                return allotted[organization_id]
            taken = set(allotted.values())
            uid = max(taken, default=self.first_uid - 1) + 1
            while uid in taken or _has_account(uid):
                uid += 1
            if uid >= LAST_UID:
                raise NoSandbox("no uid left in the range for LOCAL_PROCESS instances")
            allotted[organization_id] = uid
            write_atomic(self.registry, json.dumps(allotted, indent=2, sort_keys=True) + "\n")
            return uid
        finally:
            os.close(lock_fd)

    def instance_dir(self, change_id: str) -> Path:
        return self.files_dir / change_id

    @staticmethod
    def command(argv: list[str], uid: int) -> list[str]:
        """``argv`` run as ``uid`` (and gid ``uid``) with no way back to more privileges."""
        return [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
            *argv,
        ]


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
