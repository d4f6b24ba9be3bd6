"""deploy/kubernetes/rbac.yaml: valid for the Kubernetes API, enough for what the KUBERNETES
driver calls, and no more than that."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.kubernetes import KUBERNETES_VERSIONS
from workers.runtimes.kubernetes.runtime import RESOURCES

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "rbac.yaml"


def documents() -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(RBAC.read_text()) if document]


def rules() -> dict[tuple[str, str], set[str]]:
    """(API group, resource) -> verbs, over every ClusterRole."""
    found: dict[tuple[str, str], set[str]] = {}
    for document in documents():
        if document["kind"] != "ClusterRole":
            continue
        for rule in document["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found.setdefault((group, resource), set()).update(rule["verbs"])
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_document_is_valid_for_the_api(version: str) -> None:
    for document in documents():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_bindings_name_the_worker_and_the_roles_that_exist() -> None:
    roles = {d["metadata"]["name"] for d in documents() if d["kind"] == "ClusterRole"}
    bindings = [d for d in documents() if d["kind"] == "ClusterRoleBinding"]
    assert {binding["roleRef"]["name"] for binding in bindings} == roles
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "promenade-worker", "namespace": "promenade-system"}
        ]


def test_every_kind_the_driver_applies_or_reads_is_allowed() -> None:
    allowed = rules()
    for (api_version, _kind), (_path, plural, _namespaced) in RESOURCES.items():
        group = api_version.rpartition("/")[0]
        assert (group, plural) in allowed, plural
    applied = ["namespaces", "configmaps", "secrets", "services", "deployments", "ingresses"]
    for plural in applied:
        verbs = next(v for (_, resource), v in allowed.items() if resource == plural)
        assert {"create", "patch"} <= verbs, plural  # server-side apply creates and patches
    assert allowed[("", "pods/log")] == {"get"}


def test_nothing_beyond_what_it_needs() -> None:
    allowed = rules()
    every_verb = set().union(*allowed.values())
    assert every_verb <= {"get", "list", "create", "patch", "delete"}
    assert "*" not in {resource for _, resource in allowed}
    # Secrets are never read by name or watched, and no RBAC, node or cluster-wide object but
    # namespaces is touched.
    assert allowed[("", "secrets")] == {"list", "create", "patch", "delete"}
    assert {group for group, _ in allowed} == {"", "apps", "networking.k8s.io"}
    assert not {"nodes", "clusterroles", "rolebindings", "pods/exec"} & {r for _, r in allowed}
