"""What an instance's container is created with, and so all it can reach: a non-root user, no
network but its own loopback, a read-only root with a small ``/tmp``, no capabilities, the data
plane's limits, and its configuration as environment variables and a read-only mount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker.types import LogConfig, Mount

from app.services.dataplane_settings import ContainerSettings
from workers.runtimes.base import InstanceSpec
from workers.runtimes.instance_files import InstanceFiles

MOUNT_POINT = "/run/promenade"
SECRET_ENV_LABEL = "io.promenade.secret-env"


def user_of(image: Any, settings: ContainerSettings) -> tuple[int, int]:
    """The image's own user when it names a numeric non-root one, else the setting's."""
    user = str((image.attrs.get("Config") or {}).get("User") or "")
    uid_text, _, gid_text = user.partition(":")
    if uid_text.isdigit() and int(uid_text) != 0:
        uid = int(uid_text)
        gid = int(gid_text) if gid_text.isdigit() and int(gid_text) != 0 else uid
        return uid, gid
    return settings.uid, settings.gid


def environment_of(
    spec: InstanceSpec, image: Any, files: InstanceFiles, files_root: Path, port: int
) -> dict[str, str]:
    """Non-secret values, the secrets the image asks for (``SECRET_ENV_LABEL``), PORT, and
    where the mounted configuration is inside the container."""
    inside = Path(MOUNT_POINT)
    environment = {
        key: value
        for key, value in spec.values.items()
        if key not in spec.file_keys and key not in spec.secret_keys
    }
    wanted = _secrets_wanted(image.labels or {}, spec.secret_keys)
    environment.update({key: spec.values[key] for key in wanted if key in spec.values})
    environment.update(
        PORT=str(port),
        PROMENADE_CONFIG_FILE=str(inside / files.config_file.relative_to(files_root)),
        PROMENADE_FILES_DIR=str(inside / files.files_dir.relative_to(files_root)),
        PROMENADE_SECRETS_DIR=str(inside / files.secrets_dir.relative_to(files_root)),
    )
    return environment


def confinement(
    settings: ContainerSettings, *, uid: int, gid: int, files_root: Path
) -> dict[str, Any]:
    """The arguments of ``containers.create`` that confine the instance."""
    return {
        "user": f"{uid}:{gid}",
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": f"{settings.memory_mb}m",
        "memswap_limit": f"{settings.memory_mb}m",
        "nano_cpus": int(settings.cpus * 1e9),
        "pids_limit": settings.pids,
        "tmpfs": _tmpfs(settings.tmpfs_mb),
        "mounts": [Mount(MOUNT_POINT, str(files_root), type="bind", read_only=True)],
        "log_config": LogConfig(
            type=LogConfig.types.JSON, config={"max-size": "1m", "max-file": "2"}
        ),
        # No restart policy (the engine's default): the supervisor restarts what should run,
        # and the engine doing it too would race it.
        "stop_signal": "SIGTERM",
    }


def _tmpfs(size_mb: int) -> dict[str, str]:
    if size_mb <= 0:
        return {}
    return {"/tmp": f"rw,nosuid,nodev,size={size_mb}m,mode=1777"}


def _secrets_wanted(labels: dict[str, str], secret_keys: frozenset[str]) -> frozenset[str]:
    """The secret keys the image asks to receive as environment variables too."""
    asked = {part.strip() for part in labels.get(SECRET_ENV_LABEL, "").split(",") if part.strip()}
    return secret_keys if "*" in asked else secret_keys & asked
