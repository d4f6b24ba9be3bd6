"""The KUBERNETES runtime's manifests: valid for the Kubernetes API (its OpenAPI schemas, strict,
for the oldest and the newest version Promenade supports), confined, and named so that a change
rolls the Deployment and finds what it applied."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest

from app.services.dataplane_settings import KubernetesSettings, kubernetes_settings
from tests.support.kubernetes import KUBERNETES_VERSIONS, SECRET, spec
from workers.runtimes.base import InstanceSpec, StartFailed
from workers.runtimes.kubernetes.manifests import (
    LABEL_CHANGE,
    LABEL_DEPLOYMENT,
    Manifests,
    endpoint_url,
    manifests_of,
    namespace_of,
    service_address,
)


def settings(**values: Any) -> KubernetesSettings:
    return kubernetes_settings(values)


def made(instance: InstanceSpec | None = None, **plane: Any) -> Manifests:
    return manifests_of(instance or spec(), settings(**plane), data_plane="dp_01jplane")


def container(manifests: Manifests) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifests.deployment["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


VARIANTS: dict[str, dict[str, Any]] = {
    "service address": {},
    "ingress": {"hostSuffix": "apps.example.com", "ingressClass": "nginx"},
    "no tmp, small limits": {"tmpfsMb": 0, "memoryMb": 16, "cpus": 0.01},
}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_for_the_api(version: str, variant: str) -> None:
    manifests = made(**VARIANTS[variant])
    for manifest in manifests.in_order():
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_an_instance_without_values_or_secrets_is_valid_too(version: str) -> None:
    manifests = made(spec(values={}, file_keys=frozenset(), secret_keys=frozenset()))
    for manifest in manifests.in_order():
        kubernetes_validate.validate(manifest, version, strict=True)
    assert manifests.secret["data"] == {}


def test_strict_validation_refuses_what_the_api_would_not_know() -> None:
    # The check above means something: a field the schema does not have is refused.
    service = made().service
    service["spec"]["clusterIp"] = "None"  # the field is clusterIP
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_pod_is_confined() -> None:
    manifests = made(user="1000:2000")
    pod = manifests.deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 2000,
        "fsGroup": 2000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(manifests)["securityContext"] == {
        "runAsNonRoot": True,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert "hostNetwork" not in pod and "hostPID" not in pod
    assert manifests.namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )


def test_resources_probes_and_rolling_update() -> None:
    manifests = made(memoryMb=512, cpus=0.5, port=9000)
    deployment = manifests.deployment["spec"]
    assert deployment["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert deployment["progressDeadlineSeconds"] == 180
    assert deployment["replicas"] == 1
    main = container(manifests)
    assert main["resources"] == {
        "requests": {"cpu": "500m", "memory": "512Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }
    assert main["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"] == {"path": "/ready", "port": "http"}
    # The startup probe gives the instance its health timeout before liveness counts.
    assert main["startupProbe"]["failureThreshold"] * main["startupProbe"]["periodSeconds"] >= 30
    assert {"name": "PORT", "value": "9000"} in main["env"]
    assert {"name": "PROMENADE_LISTEN_HOST", "value": "0.0.0.0"} in main["env"]


def test_tmp_is_a_bounded_memory_volume_or_absent() -> None:
    pod = made(tmpfsMb=32).deployment["spec"]["template"]["spec"]
    assert {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}} in pod["volumes"]
    pod = made(tmpfsMb=0).deployment["spec"]["template"]["spec"]
    assert [volume["name"] for volume in pod["volumes"]] == ["configuration"]


def test_secrets_are_files_from_the_secret_never_variables_or_the_config_map() -> None:
    manifests = made()
    text = json.dumps(
        [manifests.config_map, manifests.deployment, manifests.service, manifests.namespace]
    )
    assert SECRET not in text
    assert "private key" not in text
    env = {variable["name"]: variable for variable in container(manifests)["env"]}
    assert "API_KEY" not in env
    assert "LOG_LEVEL" in env and "weird key" not in env
    secret = {
        key: base64.b64decode(value).decode() for key, value in manifests.secret["data"].items()
    }
    assert sorted(secret.values()) == sorted([SECRET, "private key"])
    volume = manifests.deployment["spec"]["template"]["spec"]["volumes"][0]["projected"]
    config_source, secret_source = volume["sources"]
    assert {item["path"] for item in secret_source["secret"]["items"]} == {
        "secrets/API_KEY",
        "files/tls/key.pem",
    }
    assert {item["path"] for item in config_source["configMap"]["items"]} == {
        "config.toml",
        "files/certs/ca.pem",
    }
    assert volume["defaultMode"] == 0o440
    mount = container(manifests)["volumeMounts"][0]
    assert mount == {"name": "configuration", "mountPath": "/run/promenade", "readOnly": True}
    config = manifests.config_map["data"]["config.toml"]
    assert "LOG_LEVEL" in config and "weird key" in config and SECRET not in config


def test_a_plain_value_is_read_from_the_config_map() -> None:
    manifests = made()
    env = {variable["name"]: variable for variable in container(manifests)["env"]}
    ref = env["LOG_LEVEL"]["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == manifests.config_map["metadata"]["name"]
    assert manifests.config_map["data"][ref["key"]] == "info"


def test_names_carry_the_configuration_digest_and_the_deployment_keeps_its_name() -> None:
    first = made()
    same_values = made(spec(change_id="chg_01jnext"))
    other_values = made(
        spec(change_id="chg_01jother", values={**spec().values, "LOG_LEVEL": "debug"})
    )
    other_secret = made(spec(change_id="chg_01jsecret", values={**spec().values, "API_KEY": "new"}))

    def name(manifest: dict[str, Any]) -> str:
        return str(manifest["metadata"]["name"])

    assert name(first.config_map) == name(same_values.config_map)
    assert name(first.config_map) != name(other_values.config_map)
    # A new secret value alone keeps the ConfigMap; the Secret is the change's.
    assert name(first.config_map) == name(other_secret.config_map)
    assert name(first.secret) != name(other_secret.secret)
    assert "chg-01jchange" in name(first.secret)
    for variant in (same_values, other_values, other_secret):
        assert name(variant.deployment) == name(first.deployment)
        assert name(variant.service) == name(first.service)
    # The template changes with the change, even with the same image and values: it rolls.
    assert same_values.deployment["spec"]["template"] != first.deployment["spec"]["template"]
    labels = first.deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[LABEL_CHANGE] == "chg_01jchange"
    assert first.deployment["spec"]["selector"] == {
        "matchLabels": {LABEL_DEPLOYMENT: "dep_01jdeployment"}
    }
    for manifest in first.in_order()[1:]:
        assert manifest["metadata"]["namespace"] == "promenade-acme-staging"
        assert manifest["metadata"]["labels"][LABEL_DEPLOYMENT] == "dep_01jdeployment"


def test_routes_that_join_alike_get_different_names() -> None:
    one = made(spec(route="/acme/staging/a-b/c"))
    other = made(spec(route="/acme/staging/a/b-c"))
    assert one.deployment["metadata"]["name"] != other.deployment["metadata"]["name"]


def test_long_names_stay_dns_labels() -> None:
    long = "x" * 63
    manifests = made(spec(route=f"/{long}/{long}/{long}/{long}"), hostSuffix="apps.example.com")
    for manifest in (manifests.namespace, manifests.deployment, manifests.service):
        assert len(manifest["metadata"]["name"]) <= 63
    assert manifests.service["metadata"]["name"][0].isalpha()
    for manifest in manifests.in_order():
        kubernetes_validate.validate(manifest, KUBERNETES_VERSIONS[-1], strict=True)


def test_endpoint_is_the_ingress_host_or_the_service_address() -> None:
    route = "/acme/staging/shop/orders"
    with_host = settings(hostSuffix="apps.example.com")
    assert endpoint_url(route, with_host) == "http://orders.shop.staging.acme.apps.example.com/"
    plain = settings()
    assert endpoint_url(route, plain) == f"http://{service_address(route, plain)}/"
    assert service_address(route, plain).endswith(".promenade-acme-staging.svc:80")
    assert made().ingress is None
    ingress = made(hostSuffix="apps.example.com", ingressClass="nginx").ingress
    assert ingress is not None
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "orders.shop.staging.acme.apps.example.com"


def test_the_namespace_template() -> None:
    custom = settings(namespaceTemplate="team-{organization}--{environment}")
    assert namespace_of("/acme/prod/shop/orders", custom) == "team-acme--prod"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"artifact": "python -m app"}, "not a container image reference"),
        ({"values": {"../x": "1"}, "file_keys": frozenset({"../x"})}, "not a path inside"),
        ({"deployment_id": "bad id"}, "cannot be a Kubernetes label value"),
        ({"route": "/acme/staging"}, "is not /<organization>"),
        ({"values": {"BIG": "x" * (1 << 20)}}, "needs a ConfigMap of"),
    ],
)
def test_what_cannot_run_fails_to_start(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(StartFailed, match=says):
        made(spec(**changes))


def test_a_value_named_like_the_runtimes_variables_does_not_repeat_them() -> None:
    manifests = made(spec(values={"PORT": "1", "PROMENADE_LISTEN_HOST": "127.0.0.1"}))
    env = container(manifests)["env"]
    names = [variable["name"] for variable in env]
    assert len(names) == len(set(names))  # server-side apply refuses a name twice
    assert {"name": "PORT", "value": "8080"} in env
    assert "PORT" in manifests.config_map["data"]["config.toml"]
