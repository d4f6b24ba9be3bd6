"""A data plane's settings, checked by runtime when it is created: KUBERNETES."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import RuntimeKind
from app.services.dataplane_settings import check_settings, kubernetes_settings
from app.services.errors import InvalidInput


def test_kubernetes_defaults() -> None:
    settings = kubernetes_settings({})
    assert settings.context is None
    assert settings.namespace_template == "promenade-{organization}-{environment}"
    assert settings.host_suffix is None and settings.ingress_class is None
    assert (settings.uid, settings.gid) == (65534, 65534)
    assert settings.progress_deadline_seconds == 180


def test_kubernetes_settings_as_written() -> None:
    settings = kubernetes_settings(
        {
            "context": "prod-eu",
            "namespaceTemplate": "int-{organization}-{environment}",
            "ingressClass": "nginx",
            "hostSuffix": "apps.example.com",
            "memoryMb": 512,
            "cpus": 0.5,
            "user": "1000:2000",
            "progressDeadlineSeconds": 300,
        }
    )
    assert settings.context == "prod-eu"
    assert settings.host_suffix == "apps.example.com"
    assert (settings.uid, settings.gid) == (1000, 2000)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"namespaceTemplate": "promenade-{organization}"}, "must contain {environment}"),
        ({"namespaceTemplate": "Team_{organization}-{environment}"}, "namespace name"),
        ({"hostSuffix": "Apps.Example.com"}, "lower-case DNS name"),
        ({"hostSuffix": "-x.example.com"}, "lower-case DNS name"),
        ({"ingressClass": "Nginx"}, "ingressClass"),
        ({"user": "0:0"}, "never run as root"),
        ({"memoryMb": 100_000}, "memoryMb"),
        ({"progressDeadlineSeconds": 1}, "progressDeadlineSeconds"),
        ({"dockerHost": "unix:///var/run/docker.sock"}, "dockerHost"),
    ],
)
def test_kubernetes_settings_refused(settings: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        check_settings(RuntimeKind.KUBERNETES, settings)
