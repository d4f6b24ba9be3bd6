"""The files an instance reads its configuration from, written before it starts and removed when
it is retired (no configuration, secrets least of all, outlives its instance on disk).

    <root>/config.toml        the values, one TOML string each (secrets only if asked)
    <root>/files/<path>       each FILE key's value, as a file
    <root>/secrets/<KEY>      each secret value, as a file (nothing else in it)

Without an owner the files belong to the worker's user (files 0600, directories 0700). With one
(an instance that runs as another user) they belong to root with the instance's group, files
0440 and directories 0550: the instance reads them and can neither change nor remove them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import tomli_w

from workers.runtimes.base import InstanceSpec, StartFailed

CONFIG_FILE = "config.toml"
FILES_DIR = "files"
SECRETS_DIR = "secrets"


class BadFileKey(ValueError):
    """A FILE key that does not name a path inside the instance's files directory."""


@dataclass(frozen=True)
class InstanceFiles:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def files_dir(self) -> Path:
        return self.root / FILES_DIR

    @property
    def secrets_dir(self) -> Path:
        return self.root / SECRETS_DIR


def config_toml(values: Mapping[str, str]) -> str:
    """A TOML document with every value as a string under its (quoted, if need be) key."""
    return tomli_w.dumps({key: values[key] for key in sorted(values)})


def write_instance_files(
    root: Path,
    values: Mapping[str, str],
    *,
    file_keys: frozenset[str],
    secret_keys: frozenset[str],
    secrets_in_config: bool,
    group: int | None = None,
) -> InstanceFiles:
    """Write the instance's files under ``root`` (made anew); ``group``: see the module."""
    files = InstanceFiles(root)
    remove_instance_files(root)
    dir_mode, file_mode = (0o700, 0o600) if group is None else (0o550, 0o440)
    in_config = {
        key: value for key, value in values.items() if secrets_in_config or key not in secret_keys
    }
    documents: dict[Path, str] = {files.config_file: config_toml(in_config)}
    for key, value in values.items():
        if key in file_keys:
            documents[files.files_dir.joinpath(*_file_parts(key))] = value
        elif key in secret_keys:
            documents[files.secrets_dir / key] = value
    for directory in (root, files.files_dir, files.secrets_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, text in documents.items():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
    # Modes last: the directories stay writable for the worker until everything is in them.
    for walked, _, names in os.walk(root):
        for name in names:
            _own(Path(walked) / name, file_mode, group)
        _own(Path(walked), dir_mode, group)
    return files


def files_of(
    spec: InstanceSpec, root: Path, *, secrets_in_config: bool, group: int | None
) -> InstanceFiles:
    """The instance's files written under ``root``, or StartFailed saying why they could not
    be (and nothing of them left)."""
    try:
        return write_instance_files(
            root,
            spec.values,
            file_keys=spec.file_keys,
            secret_keys=spec.secret_keys,
            secrets_in_config=secrets_in_config,
            group=group,
        )
    except BadFileKey as exc:
        remove_instance_files(root)
        raise StartFailed(str(exc)) from None
    except (OSError, OverflowError) as exc:
        remove_instance_files(root)
        raise StartFailed(f"could not write the configuration: {exc}") from None


def remove_instance_files(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(root)


def _file_parts(key: str) -> tuple[str, ...]:
    parts = PurePosixPath(key.lstrip("/")).parts
    if not parts or ".." in parts or "\0" in key:
        raise BadFileKey(f"the FILE key {key!r} is not a path inside the instance")
    return parts


def _own(path: Path, mode: int, group: int | None) -> None:
    if group is not None:
        os.chown(path, 0, group)
    os.chmod(path, mode)
