"""What the KUBERNETES runtime applies for one change: pure functions from an InstanceSpec and the
data plane's settings to the objects' manifests (plain dicts, as server-side apply sends them).

Per deployment, in the namespace of its organization and environment:

- a **Deployment** named after the route (stable across changes): the build's image, one
  replica, a rolling update that never takes the serving pod down first (``maxUnavailable: 0``),
  readiness, liveness and startup probes on the health path, requests equal to limits, and the
  confinement of the CONTAINER runtime: a non-root user, a read-only root filesystem with a
  size-limited ``/tmp``, no privilege escalation, every capability dropped, the runtime's
  default seccomp profile, no ServiceAccount token, no service links;
- a **ConfigMap** named with the digest of what it holds (``config.toml`` of the non-secret
  values, the non-secret FILE values, each plain value): immutable, since its content is its name;
- a **Secret** named with the change (never with a digest of secret values: a short digest of a
  low-entropy secret, readable by whoever may list Secrets, lets them test guesses against it);
  immutable, holding each secret value;
- a **Service** in front of the pods, and with a ``hostSuffix`` an **Ingress** for it.

The pod reads its configuration as the CONTAINER runtime's instances do: a read-only projected
volume at ``/run/promenade`` with ``config.toml``, ``files/<FILE key>`` and ``secrets/<KEY>``
(``PROMENADE_CONFIG_FILE``, ``PROMENADE_FILES_DIR``, ``PROMENADE_SECRETS_DIR``), plain values
whose key is an environment variable name as variables too. Secrets are never environment
variables: the CONTAINER runtime gives one so only when the image's label asks, and a worker that
does not pull images cannot read labels; a secret FILE value is in the Secret, at its path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from app.services.dataplane_settings import KubernetesSettings
from app.services.images import is_image_reference
from workers.runtimes.base import InstanceSpec, StartFailed
from workers.runtimes.instance_files import CONFIG_FILE, FILES_DIR, SECRETS_DIR, config_toml

LABEL_DEPLOYMENT = "promenade.dev/deployment"
LABEL_CHANGE = "promenade.dev/change"
LABEL_ORGANIZATION = "promenade.dev/organization"
LABEL_DATA_PLANE = "promenade.dev/data-plane"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "promenade"
ANNOTATION_ROUTE = "promenade.dev/route"
ANNOTATION_CONFIG_DIGEST = "promenade.dev/config-digest"
# On the Deployment, once a change's rollout completed (a merge patch, not part of the apply).
ANNOTATION_ROLLED_OUT = "promenade.dev/rolled-out"

CONTAINER_NAME = "instance"
PORT_NAME = "http"
SERVICE_PORT = 80
MOUNT_POINT = "/run/promenade"
# Old ReplicaSets kept for a rollback (kubectl rollout undo reads them too).
REVISION_HISTORY = 5
PROBE_PERIOD_S = 5
# What the API accepts in one ConfigMap's or Secret's data (1 MiB).
MAX_DATA_BYTES = 1 << 20

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,200}$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Place:
    """Where a route says a deployment is:
    ``/<organization>/<dnsPrefix>/<project>/<integration>``."""

    organization: str
    environment: str
    project: str
    integration: str


@dataclass(frozen=True)
class Manifests:
    namespace: dict[str, Any]
    config_map: dict[str, Any]
    secret: dict[str, Any]
    service: dict[str, Any]
    deployment: dict[str, Any]
    ingress: dict[str, Any] | None

    def in_order(self) -> list[dict[str, Any]]:
        """In the order they are applied: what the pods mount exists before the pods do."""
        objects = [self.namespace, self.config_map, self.secret, self.service, self.deployment]
        return objects + ([self.ingress] if self.ingress is not None else [])


# -- names -----------------------------------------------------------------------------------


def place_of(route: str) -> Place:
    parts = route.strip("/").split("/")
    if len(parts) != 4 or not all(_DNS_LABEL.match(part) for part in parts):
        raise StartFailed(
            f"the route {route!r} is not /<organization>/<dnsPrefix>/<project>/<integration>"
        )
    return Place(*parts)


def namespace_of(route: str, settings: KubernetesSettings) -> str:
    place = place_of(route)
    name = settings.namespace_template.format(
        organization=place.organization, environment=place.environment
    )
    return _bounded(name, route=f"{place.organization}/{place.environment}")


def name_of(route: str) -> str:
    """The Deployment's, Service's and Ingress's name: the integration and project, with a
    digest of the route so that ``a-b``/``c`` and ``a``/``b-c`` differ; a letter first (a Service
    name is a DNS-1035 label)."""
    place = place_of(route)
    suffix = _digest(route, 6)
    base = f"{place.integration}-{place.project}"
    if not base[0].isalpha():
        base = f"i-{base}"
    return f"{base[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


def host_of(route: str, settings: KubernetesSettings) -> str | None:
    """The Ingress host, when the data plane has a ``hostSuffix``: one DNS label per part of the
    route, so that no two routes share one."""
    if settings.host_suffix is None:
        return None
    place = place_of(route)
    return (
        f"{place.integration}.{place.project}.{place.environment}.{place.organization}."
        f"{settings.host_suffix}"
    )


def endpoint_url(route: str, settings: KubernetesSettings) -> str:
    host = host_of(route, settings)
    if host is not None:
        return f"http://{host}/"
    return f"http://{service_address(route, settings)}/"


def service_address(route: str, settings: KubernetesSettings) -> str:
    """The Service's host:port inside the cluster."""
    return f"{name_of(route)}.{namespace_of(route, settings)}.svc:{SERVICE_PORT}"


def config_digest(data: Mapping[str, str]) -> str:
    """The digest a ConfigMap's name carries: of its content, so that a change with the same
    non-secret configuration reuses it."""
    return _digest(json.dumps(dict(sorted(data.items())), ensure_ascii=False), 10)


# -- the manifests ---------------------------------------------------------------------------


def manifests_of(spec: InstanceSpec, settings: KubernetesSettings, *, data_plane: str) -> Manifests:
    """Everything to apply for ``spec``; StartFailed when it cannot run here (an artifact that is
    no image reference, an id that cannot be a label, a FILE key outside the instance)."""
    if not is_image_reference(spec.artifact):
        raise StartFailed(
            f"the build's artifact {spec.artifact!r} is not a container image reference, "
            "which a KUBERNETES data plane runs"
        )
    namespace = namespace_of(spec.route, settings)
    name = name_of(spec.route)
    identity = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_DATA_PLANE: _label(data_plane),
        LABEL_ORGANIZATION: _label(spec.organization_id),
        LABEL_DEPLOYMENT: _label(spec.deployment_id),
    }
    of_change = {**identity, LABEL_CHANGE: _label(spec.change_id)}
    layout = _layout(spec)
    for kind, data in (("ConfigMap", layout.config_data), ("Secret", layout.secret_data)):
        size = sum(len(key) + len(value.encode()) for key, value in data.items())
        if size > MAX_DATA_BYTES:
            raise StartFailed(
                f"the configuration needs a {kind} of {size} bytes; Kubernetes takes at most "
                f"{MAX_DATA_BYTES} (1 MiB) in one"
            )
    digest = config_digest(layout.config_data)
    config_name = f"{name}-config-{digest}"
    secret_name = f"{name}-secrets-{_dns(spec.change_id)}"

    def metadata(object_name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {
            "name": object_name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {ANNOTATION_ROUTE: spec.route},
        }

    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(config_name, of_change),
        "immutable": True,
        "data": layout.config_data,
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(secret_name, of_change),
        "type": "Opaque",
        "immutable": True,
        "data": {
            key: base64.b64encode(value.encode()).decode()
            for key, value in layout.secret_data.items()
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(name, identity),
        "spec": {
            "type": "ClusterIP",
            "selector": {LABEL_DEPLOYMENT: identity[LABEL_DEPLOYMENT]},
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, of_change),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": REVISION_HISTORY,
            "progressDeadlineSeconds": settings.progress_deadline_seconds,
            "selector": {"matchLabels": {LABEL_DEPLOYMENT: identity[LABEL_DEPLOYMENT]}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": of_change,
                    "annotations": {ANNOTATION_CONFIG_DIGEST: digest},
                },
                "spec": _pod_spec(spec, settings, layout, config_name, secret_name),
            },
        },
    }
    host = host_of(spec.route, settings)
    ingress = None if host is None else _ingress(metadata(name, identity), host, settings)
    namespace_manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_DATA_PLANE: identity[LABEL_DATA_PLANE],
                LABEL_ORGANIZATION: identity[LABEL_ORGANIZATION],
                # The pods meet the restricted Pod Security Standard; the namespace enforces it.
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    return Manifests(
        namespace=namespace_manifest,
        config_map=config_map,
        secret=secret,
        service=service,
        deployment=deployment,
        ingress=ingress,
    )


def rolled_out(change_id: str) -> dict[str, Any]:
    """The merge patch that records on the Deployment that ``change_id``'s rollout completed."""
    return {"metadata": {"annotations": {ANNOTATION_ROLLED_OUT: change_id}}}


def scaled(replicas: int) -> dict[str, Any]:
    """The merge patch that scales a Deployment (suspend: to zero). Not an apply: an apply of
    only ``replicas`` by the worker's field manager would drop every other field it owns; the
    next change's apply (forced) takes ``replicas`` back."""
    return {"spec": {"replicas": replicas}}


# -- helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where each value goes: ConfigMap and Secret keys, the paths they are mounted at, and the
    environment variables read from the ConfigMap."""

    config_data: dict[str, str]
    secret_data: dict[str, str]
    config_items: list[dict[str, str]]
    secret_items: list[dict[str, str]]
    env_keys: dict[str, str]  # variable -> ConfigMap key


def _layout(spec: InstanceSpec) -> _Layout:
    plain = {k: v for k, v in spec.values.items() if k not in spec.secret_keys}
    config_data = {CONFIG_FILE: config_toml(plain)}
    config_items = [{"key": CONFIG_FILE, "path": CONFIG_FILE}]
    secret_data: dict[str, str] = {}
    secret_items: list[dict[str, str]] = []
    env_keys: dict[str, str] = {}
    for key in sorted(spec.values):
        value = spec.values[key]
        if key in spec.file_keys:
            path = f"{FILES_DIR}/{_file_path(key)}"
            data, items = (
                (secret_data, secret_items)
                if key in spec.secret_keys
                else (config_data, config_items)
            )
            data_key = f"file.{_digest(key, 16)}"
            data[data_key] = value
            items.append({"key": data_key, "path": path})
        elif key in spec.secret_keys:
            data_key = f"secret.{key}" if _CONFIG_KEY.match(key) else f"secret.{_digest(key, 16)}"
            secret_data[data_key] = value
            secret_items.append({"key": data_key, "path": f"{SECRETS_DIR}/{_file_path(key)}"})
        elif _ENV_NAME.match(key) and len(key) <= 200:
            data_key = f"value.{key}"
            config_data[data_key] = value
            env_keys[key] = data_key
    return _Layout(config_data, secret_data, config_items, secret_items, env_keys)


def _pod_spec(
    spec: InstanceSpec,
    settings: KubernetesSettings,
    layout: _Layout,
    config_name: str,
    secret_name: str,
) -> dict[str, Any]:
    ours = {
        "PORT": str(settings.port),
        # Probes and the Service reach the pod's address: an instance that listens on its
        # loopback only (as LOCAL_PROCESS and CONTAINER instances do) is never ready.
        "PROMENADE_LISTEN_HOST": "0.0.0.0",
        "PROMENADE_CONFIG_FILE": f"{MOUNT_POINT}/{CONFIG_FILE}",
        "PROMENADE_FILES_DIR": f"{MOUNT_POINT}/{FILES_DIR}",
        "PROMENADE_SECRETS_DIR": f"{MOUNT_POINT}/{SECRETS_DIR}",
    }
    # A value under one of these names is in config.toml only: the runtime's win, as with
    # CONTAINER, and an apply with one name twice in env is refused.
    env: list[dict[str, Any]] = [
        {
            "name": variable,
            "valueFrom": {"configMapKeyRef": {"name": config_name, "key": data_key}},
        }
        for variable, data_key in sorted(layout.env_keys.items())
        if variable not in ours
    ]
    env += [{"name": variable, "value": value} for variable, value in ours.items()]
    sources: list[dict[str, Any]] = [
        {"configMap": {"name": config_name, "items": layout.config_items}}
    ]
    if layout.secret_items:
        sources.append({"secret": {"name": secret_name, "items": layout.secret_items}})
    volumes: list[dict[str, Any]] = [
        # 0440 with the pod's group (fsGroup): the instance reads its configuration, never
        # changes it.
        {"name": "configuration", "projected": {"defaultMode": 0o440, "sources": sources}}
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "configuration", "mountPath": MOUNT_POINT, "readOnly": True}
    ]
    if settings.tmpfs_mb > 0:
        volumes.append(
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": f"{settings.tmpfs_mb}Mi"}}
        )
        mounts.append({"name": "tmp", "mountPath": "/tmp"})
    limits = {"cpu": _cpu(settings.cpus), "memory": f"{settings.memory_mb}Mi"}
    probe = {
        "httpGet": {"path": spec.health_path, "port": PORT_NAME},
        "periodSeconds": PROBE_PERIOD_S,
        "timeoutSeconds": 2,
    }
    return {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": math.ceil(settings.stop_grace_seconds),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": settings.uid,
            "runAsGroup": settings.gid,
            "fsGroup": settings.gid,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": spec.artifact,
                "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": PORT_NAME, "containerPort": settings.port, "protocol": "TCP"}],
                "env": env,
                "resources": {"requests": dict(limits), "limits": limits},
                # Until the instance first answers (its health timeout), liveness waits; after
                # that three missed answers in a row restart it.
                "startupProbe": {
                    **probe,
                    "failureThreshold": max(1, math.ceil(spec.health_timeout_s / PROBE_PERIOD_S)),
                },
                "readinessProbe": {**probe, "failureThreshold": 3},
                "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
                "securityContext": {
                    "runAsNonRoot": True,
                    "privileged": False,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }


def _ingress(metadata: dict[str, Any], host: str, settings: KubernetesSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "rules": [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": metadata["name"], "port": {"name": PORT_NAME}}
                            },
                        }
                    ]
                },
            }
        ]
    }
    if settings.ingress_class is not None:
        spec["ingressClassName"] = settings.ingress_class
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": spec,
    }


def _label(value: str) -> str:
    if not value or not _LABEL_VALUE.match(value) or len(value) > 63:
        raise StartFailed(f"{value!r} cannot be a Kubernetes label value")
    return value


def _file_path(key: str) -> str:
    parts = PurePosixPath(key.lstrip("/")).parts
    if not parts or ".." in parts or "\0" in key:
        raise StartFailed(f"the FILE key {key!r} is not a path inside the instance")
    return "/".join(parts)


def _dns(text: str) -> str:
    """An id as part of a DNS name: lower case, other characters '-'."""
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:63].strip("-") or "x"


def _bounded(name: str, *, route: str) -> str:
    """A DNS label: at most 63 characters, the end replaced by a digest when it is longer."""
    if len(name) <= 63:
        return name
    suffix = _digest(route, 8)
    return f"{name[: 63 - len(suffix) - 1].rstrip('-')}-{suffix}"


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _cpu(cpus: float) -> str:
    return f"{round(cpus * 1000)}m"
