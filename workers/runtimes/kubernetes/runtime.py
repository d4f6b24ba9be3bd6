"""The KUBERNETES runtime's driver over the Kubernetes API (kubernetes_asyncio, on the event loop).

Every object is applied by server-side apply with the field manager ``promenade-worker``, forced:
a worker killed anywhere leaves objects that the next worker's identical apply finds and takes
over, field by field, without a second copy. What the worker made it finds by labels
(``promenade.dev/data-plane``, ``promenade.dev/deployment``, ``promenade.dev/change``), never by
state of its own: it keeps none on disk.

A change: apply the Namespace, the change's ConfigMap and Secret, the Service, the Deployment
(the new template rolls it), the Ingress; then wait for the rollout (``rollout.rollout_state``).
Complete: the rollout is recorded on the Deployment (``promenade.dev/rolled-out``) and the
instance is the Service's address. Failed while rolling out: the Deployment's template goes back
to the ReplicaSet that still serves (``kubectl rollout undo``), or to zero replicas when the
change was the deployment's first, and StartFailed says why with the failing pod's last lines.
Failed once rolled out (the supervisor's start of what runs, whose pod crash-loops now): only
StartFailed; Kubernetes keeps restarting the pod and nothing goes back behind the step machine.
Suspend scales the Deployment to zero and removes the Ingress, found by the deployment's label.

The worker runs inside the cluster (its ServiceAccount, ``deploy/kubernetes/rbac.yaml``) or
outside with a kubeconfig (the data plane's ``context`` in it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from app.services.dataplane_settings import KubernetesSettings
from app.services.masking import with_output
from workers.runtimes.base import Instance, InstanceSpec, StartFailed
from workers.runtimes.kubernetes.manifests import (
    CONTAINER_NAME,
    LABEL_CHANGE,
    LABEL_DATA_PLANE,
    LABEL_DEPLOYMENT,
    endpoint_url,
    manifests_of,
    rolled_out,
    scaled,
    service_address,
)
from workers.runtimes.kubernetes.rollout import (
    Complete,
    Failed,
    configuration_in_use,
    is_rolling_out,
    previous_template,
    removable,
    rolled_back,
    rollout_state,
    template_change,
)
from workers.runtimes.output import MAX_READ_BYTES, output_lines

log = logging.getLogger(__name__)

FIELD_MANAGER = "promenade-worker"
POLL_S = 1.0
OUTPUT_TAIL_LINES = 20
# ConfigMaps and Secrets nothing mounts are removed once they are this old (a start applies
# them a moment before the Deployment that mounts them).
CONFIGURATION_GRACE_S = 300.0
GARBAGE_INTERVAL_S = 60.0
# Beyond the Deployment's own progress deadline: how long a worker waits for the controller to
# say anything at all before it gives the rollout up.
DEADLINE_MARGIN_S = 60.0
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

# Where each kind the runtime touches lives in the API: group path, plural, namespaced.
RESOURCES: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("apps/v1", "Deployment"): ("/apis/apps/v1", "deployments", True),
    ("apps/v1", "ReplicaSet"): ("/apis/apps/v1", "replicasets", True),
    ("networking.k8s.io/v1", "Ingress"): ("/apis/networking.k8s.io/v1", "ingresses", True),
}


class ClusterUnavailable(Exception):
    """No cluster answers with the configuration this worker has."""


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None) -> str:
    """The API path of a kind's collection (cluster-wide when ``namespace`` is None) or of one
    object."""
    group, plural, namespaced = RESOURCES[(api_version, kind)]
    path = group
    if namespaced and namespace is not None:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


class KubernetesApi:
    """The few calls the runtime makes, on plain dicts shaped as the API's JSON."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        response = await self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return response

    async def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        metadata = manifest["metadata"]
        path = object_path(
            manifest["apiVersion"], manifest["kind"], metadata.get("namespace"), metadata["name"]
        )
        result: dict[str, Any] = await self._call(
            "PATCH",
            path,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            body=dict(manifest),
            content_type="application/apply-patch+yaml",
        )
        return result

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Mapping[str, Any]
    ) -> None:
        await self._call(
            "PATCH",
            object_path(api_version, kind, namespace, name),
            query=[("fieldManager", FIELD_MANAGER)],
            body=dict(patch),
            content_type="application/merge-patch+json",
        )

    async def version(self) -> str:
        found = await self._call("GET", "/version")
        return str(found.get("gitVersion", "unknown"))

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call(
                "GET", object_path(api_version, kind, namespace, name)
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def list(
        self, api_version: str, kind: str, namespace: str | None, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        found = await self._call(
            "GET",
            object_path(api_version, kind, namespace, None),
            query=[("labelSelector", selector(labels))],
        )
        return list(found.get("items") or [])

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete the object; one that is gone already is fine."""
        try:
            await self._call("DELETE", object_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def pod_log(
        self, namespace: str, name: str, lines: int, *, previous: bool = False
    ) -> bytes:
        """The pod's last ``lines`` lines, as bytes: read raw, since the client would parse a
        log that happens to be one JSON document into an object."""
        response = await self.api.call_api(
            object_path("v1", "Pod", namespace, name) + "/log",
            "GET",
            query_params=[
                ("container", CONTAINER_NAME),
                ("tailLines", str(lines)),
                ("limitBytes", str(MAX_READ_BYTES)),
                *([("previous", "true")] if previous else []),
            ],
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        try:
            if response.status != 200:
                return b""
            data: bytes = await response.read()
            return data
        finally:
            response.release()


async def connect(settings: KubernetesSettings, *, kubeconfig: Path | None) -> k8s.ApiClient:
    """A client for the cluster: the pod's ServiceAccount when the worker runs in the cluster
    (and no kubeconfig is named), else the kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``
    when None) at the data plane's context."""
    configuration = k8s.Configuration()
    try:
        in_cluster = kubeconfig is None and await asyncio.to_thread(SERVICE_ACCOUNT_TOKEN.exists)
        if in_cluster:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            await k8s_config.load_kube_config(
                config_file=str(kubeconfig) if kubeconfig else None,
                context=settings.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (k8s_config.ConfigException, OSError) as exc:
        raise ClusterUnavailable(f"no Kubernetes configuration: {exc}") from exc
    return k8s.ApiClient(configuration=configuration)


class KubernetesRuntime:
    """Runs builds whose artifact is an image reference as Deployments of a cluster."""

    def __init__(
        self, api: KubernetesApi, *, data_plane: str, settings: KubernetesSettings
    ) -> None:
        self.k8s = api
        self.data_plane = data_plane
        self.settings = settings
        self._collected_at = float("-inf")

    async def check(self) -> str:
        """The cluster's version; ClusterUnavailable says why it cannot be used."""
        try:
            return await self.k8s.version()
        except (ApiException, OSError, TimeoutError) as exc:
            raise ClusterUnavailable(f"the Kubernetes API does not answer: {exc!r}") from exc

    # -- the Runtime interface ---------------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> Instance:
        manifests = manifests_of(spec, self.settings, data_plane=self.data_plane)
        namespace = manifests.namespace["metadata"]["name"]
        name = manifests.deployment["metadata"]["name"]
        try:
            current = await self.k8s.get("apps/v1", "Deployment", namespace, name)
            rolling_out = is_rolling_out(current, spec.change_id)
            for manifest in manifests.in_order():
                await self.k8s.apply(manifest)
        except ApiException as exc:
            raise StartFailed(
                f"the cluster refused the change's objects: {_explain(exc)}"
            ) from None
        state = await self._wait_rollout(namespace, name, spec.change_id)
        if isinstance(state, Failed):
            tail = await self._failing_output(namespace, spec)
            if rolling_out:
                await self._undo(namespace, name, manifests.deployment, spec.change_id)
            raise StartFailed(with_output(state.reason, tail))
        if rolling_out:
            await self.k8s.merge_patch(
                "apps/v1", "Deployment", namespace, name, rolled_out(spec.change_id)
            )
        return Instance(
            change_id=spec.change_id, address=service_address(spec.route, self.settings)
        )

    async def route(self, deployment_id: str, route: str, instance: Instance) -> str:
        # The Service follows the Deployment: traffic moved when the rollout completed.
        return self.endpoint_url(route)

    def endpoint_url(self, route: str) -> str:
        return endpoint_url(route, self.settings)

    async def retire_others(self, deployment_id: str, keep_change_id: str) -> None:
        # The rolling update retired the old pods; their configuration goes once unused.
        await self._collect(self._labels(deployment_id))

    async def stop(self, deployment_id: str, route: str) -> None:
        # Found by its labels: the supervisor stops what should run nothing without a route.
        for deployment in await self._everywhere(
            "apps/v1", "Deployment", self._labels(deployment_id)
        ):
            namespace = deployment["metadata"]["namespace"]
            name = deployment["metadata"]["name"]
            await self.k8s.delete("networking.k8s.io/v1", "Ingress", namespace, name)
            if int((deployment.get("spec") or {}).get("replicas") or 0) > 0:
                await self.k8s.merge_patch("apps/v1", "Deployment", namespace, name, scaled(0))

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        if lines <= 0:
            return []
        pods = await self._everywhere("v1", "Pod", self._labels(deployment_id))
        pods.sort(key=lambda pod: str(pod["metadata"].get("creationTimestamp", "")), reverse=True)
        collected: list[str] = []
        for pod in pods:
            metadata = pod["metadata"]
            text = await self.k8s.pod_log(
                metadata["namespace"], metadata["name"], lines - len(collected)
            )
            collected = output_lines(text, lines - len(collected)) + collected
            if len(collected) >= lines:
                break
        return collected[-lines:]

    async def deployments(self) -> set[str]:
        found = await self._everywhere("apps/v1", "Deployment", self._labels())
        return {
            deployment["metadata"]["labels"][LABEL_DEPLOYMENT]
            for deployment in found
            if int((deployment.get("spec") or {}).get("replicas") or 0) > 0
            or int((deployment.get("status") or {}).get("replicas") or 0) > 0
        }

    async def collect_garbage(self) -> None:
        # Four lists per namespace: once a minute is enough for what only frees space.
        if time.monotonic() - self._collected_at < GARBAGE_INTERVAL_S:
            return
        self._collected_at = time.monotonic()
        await self._collect(self._labels())

    # -- rollouts ----------------------------------------------------------------------------

    async def _wait_rollout(self, namespace: str, name: str, change_id: str) -> Complete | Failed:
        give_up = time.monotonic() + self.settings.progress_deadline_seconds + DEADLINE_MARGIN_S
        memory = f"{self.settings.memory_mb}Mi"
        while True:
            deployment = await self.k8s.get("apps/v1", "Deployment", namespace, name)
            if deployment is None:
                return Failed("the Deployment was deleted during its rollout")
            labels = {LABEL_DEPLOYMENT: deployment["metadata"]["labels"][LABEL_DEPLOYMENT]}
            pods = await self.k8s.list("v1", "Pod", namespace, labels)
            state = rollout_state(deployment, pods, change_id=change_id, memory_limit=memory)
            if isinstance(state, Complete | Failed):
                return state
            if time.monotonic() > give_up:
                return Failed(f"the rollout did not finish: {state.detail}")
            await asyncio.sleep(POLL_S)

    async def _undo(
        self, namespace: str, name: str, applied: Mapping[str, Any], change_id: str
    ) -> None:
        """``kubectl rollout undo``: the template of the ReplicaSet that still serves, applied
        by the same field manager; none (the deployment's first change): zero replicas. Only
        while the Deployment is the change's: a newer change's rollout is left alone."""
        deployment = await self.k8s.get("apps/v1", "Deployment", namespace, name)
        if deployment is None or template_change(deployment) != change_id:
            return
        labels = {LABEL_DEPLOYMENT: deployment["metadata"]["labels"][LABEL_DEPLOYMENT]}
        replica_sets = await self.k8s.list("apps/v1", "ReplicaSet", namespace, labels)
        template = previous_template(deployment, replica_sets)
        if template is None:
            await self.k8s.merge_patch("apps/v1", "Deployment", namespace, name, scaled(0))
            return
        await self.k8s.apply(rolled_back(applied, template))

    async def _failing_output(self, namespace: str, spec: InstanceSpec) -> list[str]:
        labels = {LABEL_DEPLOYMENT: spec.deployment_id, LABEL_CHANGE: spec.change_id}
        pods = await self.k8s.list("v1", "Pod", namespace, labels)
        for pod in pods:
            # A container waiting to be restarted has no output of its own: its last run has.
            for previous in (False, True):
                text = await self.k8s.pod_log(
                    namespace, pod["metadata"]["name"], OUTPUT_TAIL_LINES, previous=previous
                )
                if text:
                    return output_lines(text, OUTPUT_TAIL_LINES)
        return []

    async def _collect(self, labels: Mapping[str, str]) -> None:
        """The ConfigMaps and Secrets with ``labels`` (a deployment's, or the data plane's)
        that nothing mounts any more, namespace by namespace."""
        now = datetime.now(UTC)
        for namespace in await self.k8s.list("v1", "Namespace", None, self._labels()):
            where = namespace["metadata"]["name"]
            deployments = await self.k8s.list("apps/v1", "Deployment", where, labels)
            replica_sets = await self.k8s.list("apps/v1", "ReplicaSet", where, labels)
            in_use: set[str] = set()
            for deployment in deployments:
                in_use |= configuration_in_use(deployment, replica_sets)
            in_use |= configuration_in_use(None, replica_sets)
            for kind in ("ConfigMap", "Secret"):
                objects = await self.k8s.list("v1", kind, where, labels)
                for obj in removable(objects, in_use, now=now, grace_s=CONFIGURATION_GRACE_S):
                    name = obj["metadata"]["name"]
                    log.info("removing %s %s/%s: nothing mounts it", kind, where, name)
                    await self.k8s.delete("v1", kind, where, name)

    async def _everywhere(
        self, api_version: str, kind: str, labels: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The objects with ``labels`` in every namespace of this data plane: namespace by
        namespace, so that the worker needs no cluster-wide read of Secrets or Pods (its
        namespaced rights may be bound in those namespaces only: deploy/kubernetes/rbac.yaml)."""
        namespaces = await self.k8s.list("v1", "Namespace", None, self._labels())
        found: list[dict[str, Any]] = []
        for namespace in namespaces:
            found += await self.k8s.list(api_version, kind, namespace["metadata"]["name"], labels)
        return found

    def _labels(self, deployment_id: str | None = None) -> dict[str, str]:
        labels = {LABEL_DATA_PLANE: self.data_plane}
        if deployment_id is not None:
            labels[LABEL_DEPLOYMENT] = deployment_id
        return labels


def _explain(exc: ApiException) -> str:
    body = exc.body.decode(errors="replace") if isinstance(exc.body, bytes) else exc.body
    return f"{exc.status} {exc.reason}: {body}" if body else f"{exc.status} {exc.reason}"
