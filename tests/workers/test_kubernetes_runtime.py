"""The parts of the KUBERNETES driver that need no cluster: where objects are in the API, label
selectors, and which cluster a worker outside one connects to (its kubeconfig, at the data
plane's context). The calls themselves are tested against a real cluster (tests/kubernetes/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.models import RuntimeKind
from app.services.dataplane_settings import kubernetes_settings
from app.services.dataplanes import ServedDataPlane
from app.settings import Settings
from workers.planes import CannotServe, Runtimes
from workers.runtimes.kubernetes.runtime import (
    ClusterUnavailable,
    connect,
    object_path,
    selector,
)


def test_object_paths() -> None:
    assert object_path("v1", "Namespace", None, "promenade-acme-staging") == (
        "/api/v1/namespaces/promenade-acme-staging"
    )
    assert object_path("v1", "Secret", "ns", "s") == "/api/v1/namespaces/ns/secrets/s"
    assert object_path("apps/v1", "Deployment", "ns", None) == (
        "/apis/apps/v1/namespaces/ns/deployments"
    )
    # Cluster-wide lists (every namespace of the data plane's instances).
    assert object_path("v1", "Pod", None, None) == "/api/v1/pods"
    assert object_path("networking.k8s.io/v1", "Ingress", "ns", "a") == (
        "/apis/networking.k8s.io/v1/namespaces/ns/ingresses/a"
    )


def test_label_selectors() -> None:
    assert selector({"promenade.dev/deployment": "d1", "promenade.dev/data-plane": "dp"}) == (
        "promenade.dev/data-plane=dp,promenade.dev/deployment=d1"
    )


def kubeconfig(path: Path, *, server: str = "https://dev.example.invalid:6443") -> Path:
    def cluster(name: str, server: str) -> dict[str, object]:
        return {"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}

    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            cluster("dev", server),
            cluster("prod", "https://prod.example.invalid:6443"),
        ],
        "users": [{"name": "worker", "user": {"token": "not-a-real-token"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "dev", "user": "worker"}},
            {"name": "prod-eu", "context": {"cluster": "prod", "user": "worker"}},
        ],
        "current-context": "dev",
    }
    path.write_text(yaml.safe_dump(document))
    return path


async def test_a_worker_outside_the_cluster_uses_the_data_planes_context(tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "config")
    api = await connect(kubernetes_settings({"context": "prod-eu"}), kubeconfig=config)
    try:
        assert api.configuration.host == "https://prod.example.invalid:6443"
    finally:
        await api.close()
    api = await connect(kubernetes_settings({}), kubeconfig=config)
    try:
        assert api.configuration.host == "https://dev.example.invalid:6443"
    finally:
        await api.close()


async def test_a_missing_kubeconfig_or_context_says_so(tmp_path: Path) -> None:
    with pytest.raises(ClusterUnavailable, match="no Kubernetes configuration"):
        await connect(kubernetes_settings({}), kubeconfig=tmp_path / "missing")
    with pytest.raises(ClusterUnavailable, match="no Kubernetes configuration"):
        await connect(
            kubernetes_settings({"context": "nowhere"}), kubeconfig=kubeconfig(tmp_path / "c")
        )


def plane(**settings: str) -> ServedDataPlane:
    return ServedDataPlane(
        routing_key="dp_k8s", runtime=RuntimeKind.KUBERNETES, settings=settings, label="acme/k8s"
    )


async def test_a_data_plane_may_name_only_a_context_the_operator_allows(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, kubeconfig=kubeconfig(tmp_path / "config"))
    with pytest.raises(CannotServe, match="which this worker may not use"):
        await Runtimes(settings).runtime_for(plane(context="prod-eu"))
    allowed = Settings(data_dir=tmp_path, kubernetes_contexts="prod-eu, dev")
    assert allowed.allowed_kubernetes_contexts() == {"prod-eu", "dev"}


async def test_a_worker_without_a_cluster_cannot_serve_the_data_plane(tmp_path: Path) -> None:
    missing = Settings(data_dir=tmp_path, kubeconfig=tmp_path / "missing")
    with pytest.raises(CannotServe, match="no Kubernetes configuration"):
        await Runtimes(missing).runtime_for(plane())
    # Nothing listens on port 1: the API does not answer (no API server runs here).
    unreachable = kubeconfig(tmp_path / "config", server="https://127.0.0.1:1")
    settings = Settings(data_dir=tmp_path, kubeconfig=unreachable)
    with pytest.raises(CannotServe, match="does not answer"):
        await Runtimes(settings).runtime_for(plane())
    with pytest.raises(CannotServe, match=r"settings\.hostSuffix"):
        await Runtimes(settings).runtime_for(plane(hostSuffix="Not A Host"))
