"""What the KUBERNETES runtime's tests share: the Kubernetes versions its manifests are checked
against, and an instance's spec with a value of every kind."""

from __future__ import annotations

from typing import Any

from workers.runtimes.base import InstanceSpec

# The oldest and the newest Kubernetes version the KUBERNETES runtime supports.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

SECRET = "hunter2-very-secret"


def spec(**changes: Any) -> InstanceSpec:
    fields: dict[str, Any] = {
        "deployment_id": "dep_01jdeployment",
        "change_id": "chg_01jchange",
        "artifact": "registry.example.com/team/orders:1.2",
        "values": {
            "LOG_LEVEL": "info",
            "weird key": "only in config.toml",
            "certs/ca.pem": "-----BEGIN CERTIFICATE-----",
            "tls/key.pem": "private key",
            "API_KEY": SECRET,
        },
        "file_keys": frozenset({"certs/ca.pem", "tls/key.pem"}),
        "secret_keys": frozenset({"API_KEY", "tls/key.pem"}),
        "organization_id": "org_01jorganization",
        "route": "/acme/staging/shop/orders",
        "health_path": "/ready",
        "health_timeout_s": 30.0,
    }
    fields.update(changes)
    return InstanceSpec(**fields)
