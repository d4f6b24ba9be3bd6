"""The KUBERNETES runtime against a real cluster: ``make test-kubernetes``.

The cluster is the one of ``PROMENADE_TEST_KUBECONFIG`` (its current context), which the tests
may use: each test makes namespaces ``promtest-<run>-...`` labelled with a data plane of its
own and deletes them at the end. The image ``PROMENADE_TEST_KUBERNETES_IMAGE`` (default
``greeter:1.0.0``, examples/greeter) must be on the cluster's nodes already, e.g. with kind:

    docker build -t greeter:1.0.0 examples/greeter
    kind create cluster && kind load docker-image greeter:1.0.0
    kind get kubeconfig > /tmp/kind.kubeconfig
    PROMENADE_TEST_KUBECONFIG=/tmp/kind.kubeconfig make test-kubernetes

Without ``PROMENADE_TEST_KUBECONFIG`` the tests fail saying so (``make test`` does not select
them: they carry the ``kubernetes`` marker, from their folder).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.services.dataplane_settings import KubernetesSettings, kubernetes_settings
from workers.runtimes.kubernetes.manifests import LABEL_DATA_PLANE
from workers.runtimes.kubernetes.runtime import KubernetesApi, KubernetesRuntime, connect

DEFAULT_IMAGE = "greeter:1.0.0"


@dataclass
class Cluster:
    runtime: KubernetesRuntime
    api: KubernetesApi
    settings: KubernetesSettings
    kubeconfig: Path
    image: str
    data_plane: str

    async def another_worker(self) -> KubernetesRuntime:
        """A runtime of its own, as a second worker (or the same one restarted) would have."""
        client = await connect(self.settings, kubeconfig=self.kubeconfig)
        return KubernetesRuntime(
            KubernetesApi(client), data_plane=self.data_plane, settings=self.settings
        )


@pytest.fixture
def kubeconfig() -> Path:
    path = os.environ.get("PROMENADE_TEST_KUBECONFIG")
    if not path:
        pytest.fail(
            "the Kubernetes tests need a cluster: set PROMENADE_TEST_KUBECONFIG to its "
            "kubeconfig (make test-kubernetes says how to get one with kind)"
        )
    return Path(path)


@pytest.fixture
async def cluster(kubeconfig: Path) -> AsyncIterator[Cluster]:
    run = uuid.uuid4().hex[:8]
    settings = kubernetes_settings(
        {
            "namespaceTemplate": f"promtest-{run}-{{organization}}-{{environment}}",
            "progressDeadlineSeconds": 30,
            "memoryMb": 64,
            "cpus": 0.2,
        }
    )
    client = await connect(settings, kubeconfig=kubeconfig)
    api = KubernetesApi(client)
    data_plane = f"dp_test{run}"
    runtime = KubernetesRuntime(api, data_plane=data_plane, settings=settings)
    await runtime.check()
    try:
        yield Cluster(
            runtime=runtime,
            api=api,
            settings=settings,
            kubeconfig=kubeconfig,
            image=os.environ.get("PROMENADE_TEST_KUBERNETES_IMAGE") or DEFAULT_IMAGE,
            data_plane=data_plane,
        )
    finally:
        for namespace in await api.list("v1", "Namespace", None, {LABEL_DATA_PLANE: data_plane}):
            await api.delete("v1", "Namespace", "", namespace["metadata"]["name"])
        await client.close()
