"""What a change runs: the failure text of an instance never carries a secret value."""

from __future__ import annotations

from typing import Any

import pytest

from app.models import ChangeKind, DeploymentChange
from workers.instances import InstanceTarget, start_instance
from workers.runtimes.base import Instance, InstanceSpec, StartFailed


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


class _Runtime:
    """Starts nothing: it answers what it is told to, in the words of an instance's output."""

    def __init__(self, *, fails: str | None = None, restarted_after: str | None = None) -> None:
        self.fails = fails
        self.restarted_after = restarted_after

    async def start(self, spec: InstanceSpec) -> Instance:
        if self.fails is not None:
            raise StartFailed(self.fails)
        return Instance(spec.change_id, "127.0.0.1:1", restarted_after=self.restarted_after)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"start_instance called {name}")


async def test_starting_masks_why_an_instance_did_not_start_and_how_the_last_one_ended() -> None:
    target = _target({"API_KEY": "s3cret-value"})
    runtime: Any = _Runtime(fails="exited with code 1: bad key s3cret-value")
    with pytest.raises(StartFailed) as failure:
        await start_instance(runtime, target, health_timeout_s=1.0)
    assert str(failure.value) == "exited with code 1: bad key [secret]"

    runtime = _Runtime(restarted_after="was killed, last said s3cret-value")
    instance = await start_instance(runtime, target, health_timeout_s=1.0)
    assert instance.restarted_after == "was killed, last said [secret]"
