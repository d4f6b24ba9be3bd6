"""What a data plane's ``settings`` may say, by runtime; checked when the data plane is created
and read again by the workers that serve it.

CONTAINER (every key optional; unknown keys are refused, so a typo is not silently ignored):

- ``dockerHost``: the engine, a ``unix://`` socket on the worker's machine (default: the
  worker's ``DOCKER_HOST``, else ``unix:///var/run/docker.sock``).
- ``memoryMb`` (256, at most 16384): memory limit of each instance, no swap beyond it; over it
  the kernel kills the instance.
- ``cpus`` (1.0, at most 8): CPU limit of each instance.
- ``pids`` (128, at most 4096): how many processes and threads an instance may have.
- ``tmpfsMb`` (64, at most 1024): size of the instance's writable ``/tmp`` (its root filesystem
  is read-only).
- ``port`` (8080): the port an instance listens on (``$PORT``), in its own network namespace.
- ``user`` (``65534:65534``): ``uid[:gid]`` that instances run as when the image names no
  numeric non-root user of its own (1 to 1899999999: never root, never a LOCAL_PROCESS uid).
- ``stopGraceSeconds`` (10, at most 120): between SIGTERM and SIGKILL when an instance is
  retired.

A worker uses a data plane's ``dockerHost`` only if the operator allows that engine
(``PROMENADE_DOCKER_HOSTS``; the worker's own ``DOCKER_HOST`` always): an organization's ADMIN
must not point the operator's root worker at a socket of its own choosing.

The engine must be on the worker's machine: the worker mounts each instance's files from its
own disk and reaches instances through their network namespaces (see
``workers/runtimes/container/``), so a TCP engine address is refused rather than half working.

KUBERNETES (every key optional, unknown keys refused):

- ``context``: the kubeconfig context the worker uses (default: the kubeconfig's current one;
  a worker inside the cluster uses its ServiceAccount and ignores it).
- ``namespaceTemplate`` (``promenade-{organization}-{environment}``): the namespace of an
  environment's instances, from the organization's slug and the environment's DNS prefix (both
  placeholders required: one namespace per organization and environment).
- ``ingressClass`` and ``hostSuffix``: with a ``hostSuffix`` each deployment gets an Ingress (of
  that class, else the cluster's default) at ``<integration>.<project>.<dnsPrefix>.
  <organization>.<hostSuffix>``; without one the endpoint is the Service's cluster address.
- ``memoryMb``, ``cpus``, ``tmpfsMb``, ``port``, ``user``: as for CONTAINER, the requests and
  limits of each instance's container (requests equal limits), its ``/tmp``, its port and the
  uid:gid it runs as (never root).
- ``progressDeadlineSeconds`` (180, 10 to 3600): how long a rollout may make no progress before
  it fails (the Deployment's ``progressDeadlineSeconds``).
- ``stopGraceSeconds``: the pods' ``terminationGracePeriodSeconds``.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.models import RuntimeKind
from app.services.errors import InvalidInput

_USER = re.compile(r"^[0-9]{1,10}(:[0-9]{1,10})?$")
# What one organization's ADMIN may ask of the operator's machine per instance.
MAX_MEMORY_MB = 16_384
MAX_CPUS = 8.0
MAX_PIDS = 4096
MAX_TMPFS_MB = 1024
# Container users: not root, and not the range LOCAL_PROCESS instances run as
# (workers.runtimes.local_users), whose files on the same machine they could otherwise read.
LOWEST_ID = 1
HIGHEST_ID = 1_899_999_999


class ContainerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    docker_host: str | None = Field(default=None, alias="dockerHost", max_length=500)
    memory_mb: int = Field(default=256, alias="memoryMb", ge=16, le=MAX_MEMORY_MB)
    cpus: float = Field(default=1.0, ge=0.01, le=MAX_CPUS)
    pids: int = Field(default=128, ge=8, le=MAX_PIDS)
    tmpfs_mb: int = Field(default=64, alias="tmpfsMb", ge=0, le=MAX_TMPFS_MB)
    port: int = Field(default=8080, ge=1, le=65_535)
    user: str = Field(default="65534:65534", max_length=21)
    stop_grace_seconds: float = Field(default=10.0, alias="stopGraceSeconds", ge=0, le=120)

    @field_validator("docker_host")
    @classmethod
    def _local_socket(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("unix:///") or "\0" in value:
            raise ValueError(
                "must be a unix:///path socket on the worker's machine (the worker mounts its "
                "instances' files and enters their network namespaces, so the engine is local)"
            )
        return value

    @field_validator("user")
    @classmethod
    def _non_root(cls, value: str) -> str:
        return _non_root_user(value)

    @property
    def uid(self) -> int:
        return int(self.user.partition(":")[0])

    @property
    def gid(self) -> int:
        uid, _, gid = self.user.partition(":")
        return int(gid or uid)


def _non_root_user(value: str) -> str:
    if not _USER.match(value):
        raise ValueError("must be a numeric uid or uid:gid, e.g. 65534:65534")
    uid, _, gid = value.partition(":")
    if int(uid) == 0 or (gid and int(gid) == 0):
        raise ValueError("instances never run as root (uid or gid 0)")
    for number in (uid, gid or uid):
        if not LOWEST_ID <= int(number) <= HIGHEST_ID:
            raise ValueError(f"uid and gid must be between {LOWEST_ID} and {HIGHEST_ID}")
    return value


# A DNS-1123 subdomain made of labels: an Ingress host's suffix.
_HOST_SUFFIX = re.compile(
    r"^(?=.{1,200}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)
_NAMESPACE_PLACEHOLDERS = ("{organization}", "{environment}")
_Model = TypeVar("_Model", bound=BaseModel)


class KubernetesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    context: str | None = Field(default=None, min_length=1, max_length=253)
    namespace_template: str = Field(
        default="promenade-{organization}-{environment}",
        alias="namespaceTemplate",
        max_length=63,
    )
    ingress_class: str | None = Field(
        default=None,
        alias="ingressClass",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    )
    host_suffix: str | None = Field(default=None, alias="hostSuffix", max_length=200)
    memory_mb: int = Field(default=256, alias="memoryMb", ge=16, le=MAX_MEMORY_MB)
    cpus: float = Field(default=1.0, ge=0.01, le=MAX_CPUS)
    tmpfs_mb: int = Field(default=64, alias="tmpfsMb", ge=0, le=MAX_TMPFS_MB)
    port: int = Field(default=8080, ge=1, le=65_535)
    user: str = Field(default="65534:65534", max_length=21)
    progress_deadline_seconds: int = Field(
        default=180, alias="progressDeadlineSeconds", ge=10, le=3600
    )
    stop_grace_seconds: float = Field(default=10.0, alias="stopGraceSeconds", ge=0, le=120)

    @field_validator("namespace_template")
    @classmethod
    def _per_organization_and_environment(cls, value: str) -> str:
        missing = [p for p in _NAMESPACE_PLACEHOLDERS if p not in value]
        if missing:
            raise ValueError(f"must contain {' and '.join(missing)}")
        rest = value
        for placeholder in _NAMESPACE_PLACEHOLDERS:
            rest = rest.replace(placeholder, "a")
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", rest):
            raise ValueError(
                "must be lower-case letters, digits and '-' around {organization} and "
                "{environment} (a namespace name)"
            )
        return value

    @field_validator("host_suffix")
    @classmethod
    def _host_suffix(cls, value: str | None) -> str | None:
        if value is not None and not _HOST_SUFFIX.match(value):
            raise ValueError("must be a lower-case DNS name, e.g. apps.example.com")
        return value

    @field_validator("user")
    @classmethod
    def _non_root(cls, value: str) -> str:
        return _non_root_user(value)

    @property
    def uid(self) -> int:
        return int(self.user.partition(":")[0])

    @property
    def gid(self) -> int:
        uid, _, gid = self.user.partition(":")
        return int(gid or uid)


def _validated(model: type[_Model], settings: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "settings"
        raise InvalidInput(f"settings.{where}: {first['msg']}", field="settings") from None


def container_settings(settings: dict[str, Any]) -> ContainerSettings:
    """The CONTAINER settings, or InvalidInput on ``settings`` that names what is wrong."""
    return _validated(ContainerSettings, settings)


def kubernetes_settings(settings: dict[str, Any]) -> KubernetesSettings:
    """The KUBERNETES settings, or InvalidInput on ``settings`` that names what is wrong."""
    return _validated(KubernetesSettings, settings)


def check_settings(runtime: RuntimeKind, settings: dict[str, Any]) -> None:
    """Refuse settings the runtime cannot use (raises InvalidInput on ``settings``)."""
    if runtime is RuntimeKind.CONTAINER:
        container_settings(settings)
    elif runtime is RuntimeKind.KUBERNETES:
        kubernetes_settings(settings)
