"""What a change runs: the failure text of an instance never carries a secret value."""

from __future__ import annotations

from app.models import ChangeKind, DeploymentChange
from workers.instances import InstanceTarget


def _target(values: dict[str, str]) -> InstanceTarget:
    change = DeploymentChange(
        organization_id="org_1", deployment_id="dep_1", kind=ChangeKind.RESTART
    )
    return InstanceTarget(
        change=change,
        route="/acme/dev/billing/greeter",
        artifact="python3 app.py",
        values={"GREETING": "hello", **values},
        file_keys=frozenset(),
        secret_keys=frozenset(values),
    )


def test_secret_values_are_blanked_out_of_an_instances_output() -> None:
    output = "exited with code 1\nlast lines of output:\nusing API_KEY=s3cret-value, hello"
    cleaned = _target({"API_KEY": "s3cret-value"}).without_secrets(output)
    assert "s3cret-value" not in cleaned
    assert cleaned.endswith("using API_KEY=[secret], hello")


def test_very_short_secrets_are_left_alone_rather_than_garble_the_text() -> None:
    output = "exited with code 1"
    assert _target({"PIN": "1"}).without_secrets(output) == output
