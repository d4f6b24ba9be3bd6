"""A Unix user of its own for each deployment's LOCAL_PROCESS instances.

When the worker runs as root, an instance runs as the uid allotted to its deployment (its
integration in one environment; gid the same number), with no supplementary groups: an
ordinary unprivileged user. The child process drops to it before it runs anything, so no
program runs as root with the instance's environment. The uids have no /etc/passwd entry and
come from a range no account uses; the allotment is kept in one file per machine
(``/var/lib/promenade``), so that two installations on one machine never share a uid.

One uid per deployment, not per organization: an organization's Development instance must
not read its Production instance's secrets, which a promotion into Production may need a
review for.

What that user can read: its instance's configuration (root-owned, group-readable by its gid,
under ``/run/promenade/instances``), the world-readable parts of the machine (the build's own
program, /usr, ...). What it cannot read: the data directory (0700), the secret key, the
database file, other deployments' configuration files, the ``/proc/<pid>/environ`` of the
worker or of other deployments' instances (the kernel allows that only to the same uid), the
Docker socket. What it can do: whatever an unprivileged user may, on the machine's network too
(see the README's "Trust and isolation").
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
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
        """Users per deployment, or NoSandbox saying why not."""
        if os.geteuid() != 0:
            raise NoSandbox(
                "the worker does not run as root, so LOCAL_PROCESS instances run as its own "
                "user and can read what it can (its environment and data directory included)"
            )
        return cls()

    def prepare(self) -> None:
        """The machine-wide directories, traversable but not listable by instances."""
        for directory in (self.files_dir.parent, self.files_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o711)
        self.registry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    def uid_of(self, owner: str) -> int:
        """The uid of ``owner`` (a deployment's id), allotted on first use (under a lock:
        several workers of one machine share the registry)."""
        self.prepare()
        lock_fd = os.open(self.registry.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                allotted: dict[str, int] = json.loads(self.registry.read_text())
            except FileNotFoundError:
                allotted = {}
            if owner in allotted:
                return allotted[owner]
            taken = set(allotted.values())
            uid = max(taken, default=self.first_uid - 1) + 1
            while uid in taken or _has_account(uid):
                uid += 1
            if uid >= LAST_UID:
                raise NoSandbox("no uid left in the range for LOCAL_PROCESS instances")
            allotted[owner] = uid
            write_atomic(self.registry, json.dumps(allotted, indent=2, sort_keys=True) + "\n")
            return uid
        finally:
            os.close(lock_fd)

    def instance_dir(self, change_id: str) -> Path:
        return self.files_dir / change_id

    def owns(self, uid: int) -> bool:
        """Whether ``uid`` is one of the range this allots from."""
        return self.first_uid <= uid < LAST_UID


def _has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
