"""The KUBERNETES runtime's decisions, from objects shaped as the API returns them
(tests/fixtures/kubernetes/: the status shapes of the Kubernetes documentation's examples,
with the names and labels the runtime gives): when a rollout is complete, still going or failed,
what a failure says, and what a failed rollout goes back to."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from app.services.dataplane_settings import kubernetes_settings
from tests.support.kubernetes import KUBERNETES_VERSIONS, spec
from workers.runtimes.kubernetes.manifests import manifests_of
from workers.runtimes.kubernetes.rollout import (
    Complete,
    Failed,
    Progressing,
    configuration_in_use,
    is_rolling_out,
    previous_template,
    removable,
    rolled_back,
    rollout_state,
    template_change,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kubernetes"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def state(deployment: str, *pods: str, change_id: str = "chg_new") -> Any:
    return rollout_state(
        fixture(deployment),
        [fixture(pod) for pod in pods],
        change_id=change_id,
        memory_limit="256Mi",
    )


def test_complete_when_every_replica_is_new_and_available() -> None:
    assert state("deployment-complete", "pod-running-ready") == Complete()


def test_not_complete_before_the_controller_observed_the_generation() -> None:
    # Its conditions are the last rollout's: a deadline exceeded then does not fail this one.
    found = state("deployment-not-observed", "pod-old-serving")
    assert isinstance(found, Progressing)
    assert "controller" in found.detail


def test_progressing_while_the_new_pod_is_not_available() -> None:
    found = state("deployment-rolling", "pod-old-serving", "pod-not-ready")
    assert isinstance(found, Progressing)


def test_progressing_while_an_old_replica_is_left() -> None:
    found = state("deployment-old-terminating", "pod-old-serving", "pod-running-ready")
    assert found == Progressing("1 old replicas pending termination")


def test_a_pull_error_is_given_its_retry_but_a_back_off_fails() -> None:
    assert isinstance(state("deployment-rolling", "pod-err-image-pull"), Progressing)
    found = state("deployment-rolling", "pod-old-serving", "pod-image-pull-backoff")
    assert isinstance(found, Failed)
    assert "image cannot be pulled" in found.reason
    assert "orders:1.3-typo" in found.reason


def test_a_crash_loop_fails_with_the_exit_code() -> None:
    found = state("deployment-rolling", "pod-crash-loop")
    assert isinstance(found, Failed)
    assert "exited with code 3" in found.reason
    assert "CrashLoopBackOff" in found.reason


def test_an_oom_kill_fails_at_once_with_the_limit() -> None:
    found = state("deployment-rolling", "pod-oom-killed")
    assert found == Failed(
        "pod orders-shop-a94c6e-5d8f7c9b6d-x7k2p was killed for running out of memory "
        "(its limit is 256Mi)"
    )


def test_a_container_that_cannot_be_created_fails() -> None:
    found = state("deployment-rolling", "pod-create-config-error")
    assert isinstance(found, Failed)
    assert "configmap" in found.reason and "not found" in found.reason


def test_an_evicted_pod_fails() -> None:
    found = state("deployment-rolling", "pod-evicted")
    assert isinstance(found, Failed)
    assert "Evicted" in found.reason


@pytest.mark.parametrize(
    ("pod", "says"),
    [
        ("pod-not-ready", "readiness probe does not succeed"),
        ("pod-unschedulable", "Insufficient memory"),
    ],
)
def test_the_deadline_fails_with_what_the_pods_wait_for(pod: str, says: str) -> None:
    # Not ready or not scheduled: waiting may cure it, until the progress deadline.
    assert isinstance(state("deployment-rolling", pod), Progressing)
    found = state("deployment-progress-deadline-exceeded", "pod-old-serving", pod)
    assert isinstance(found, Failed)
    assert "no progress within 180 s" in found.reason
    assert says in found.reason
    assert "q9w3z" not in found.reason  # the old change's pod is not this rollout's


def test_a_replica_failure_fails_with_its_message() -> None:
    found = state("deployment-replica-failure", "pod-old-serving")
    assert isinstance(found, Failed)
    assert "exceeded quota" in found.reason


def test_pods_of_other_changes_do_not_decide() -> None:
    found = state("deployment-rolling", "pod-crash-loop", change_id="chg_other")
    assert isinstance(found, Failed)
    assert "runs change chg_new now" in found.reason
    crashed = fixture("pod-crash-loop")
    crashed["metadata"]["labels"]["promenade.dev/change"] = "chg_old"
    assert isinstance(
        rollout_state(fixture("deployment-rolling"), [crashed], change_id="chg_new"), Progressing
    )


def test_undo_goes_back_to_the_replica_set_that_still_serves() -> None:
    replica_sets = fixture("replicasets-failed-rollout")["items"]
    template = previous_template(fixture("deployment-progress-deadline-exceeded"), replica_sets)
    assert template is not None
    assert template["metadata"]["labels"]["promenade.dev/change"] == "chg_old"
    assert "pod-template-hash" not in template["metadata"]["labels"]
    assert template["spec"]["containers"][0]["image"] == "registry.example.com/team/orders:1.2"


def test_undo_without_a_serving_replica_set_takes_the_newest_earlier_revision() -> None:
    replica_sets = fixture("replicasets-failed-rollout")["items"]
    for replica_set in replica_sets:
        replica_set["status"]["readyReplicas"] = 0
    template = previous_template(fixture("deployment-progress-deadline-exceeded"), replica_sets)
    assert template is not None
    assert template["metadata"]["labels"]["promenade.dev/change"] == "chg_old"


def test_no_undo_for_the_first_change() -> None:
    replica_sets = fixture("replicasets-failed-rollout")["items"][2:]
    assert previous_template(fixture("deployment-progress-deadline-exceeded"), replica_sets) is None


def test_replica_sets_of_another_deployment_are_not_undone_to() -> None:
    replica_sets = fixture("replicasets-failed-rollout")["items"]
    for replica_set in replica_sets:
        replica_set["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    assert previous_template(fixture("deployment-progress-deadline-exceeded"), replica_sets) is None


def test_configuration_in_use_is_what_live_templates_mount() -> None:
    replica_sets = fixture("replicasets-failed-rollout")["items"]
    in_use = configuration_in_use(fixture("deployment-progress-deadline-exceeded"), replica_sets)
    assert in_use == {
        "orders-shop-a94c6e-config-3f1c0de2a1",
        "orders-shop-a94c6e-secrets-chg-old",
        "orders-shop-a94c6e-config-9b7e44c0d5",
        "orders-shop-a94c6e-secrets-chg-new",
    }
    # Revision 1 has no pods: its ConfigMap and Secret may go.
    assert "orders-shop-a94c6e-config-0aa1b2c3d4" not in in_use


def test_unused_configuration_goes_once_older_than_a_start() -> None:
    def config_map(name: str, created: str) -> dict[str, Any]:
        return {"kind": "ConfigMap", "metadata": {"name": name, "creationTimestamp": created}}

    objects = [
        config_map("in-use", "2026-12-04T10:00:00Z"),
        config_map("old", "2026-12-04T10:00:00Z"),
        config_map("just-applied", "2026-12-04T19:59:00Z"),
    ]
    now = datetime(2026, 12, 4, 20, 0, tzinfo=UTC)
    found = removable(objects, {"in-use"}, now=now, grace_s=300)
    assert [obj["metadata"]["name"] for obj in found] == ["old"]


def test_the_undo_puts_the_serving_template_back_into_a_valid_apply() -> None:
    applied = manifests_of(
        spec(change_id="chg_new"), kubernetes_settings({}), data_plane="dp_01jplane"
    ).deployment
    template = previous_template(
        fixture("deployment-progress-deadline-exceeded"),
        fixture("replicasets-failed-rollout")["items"],
    )
    assert template is not None
    back = rolled_back(applied, template)
    assert back["metadata"]["labels"]["promenade.dev/change"] == "chg_old"
    assert back["spec"]["template"]["metadata"]["labels"]["promenade.dev/change"] == "chg_old"
    assert back["spec"]["strategy"] == applied["spec"]["strategy"]
    assert applied["metadata"]["labels"]["promenade.dev/change"] == "chg_new"  # not changed
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(back, version, strict=True)


def test_a_start_rolls_out_until_the_rollout_is_recorded() -> None:
    assert is_rolling_out(None, "chg_new")  # the deployment's first change
    complete = fixture("deployment-complete")
    assert template_change(complete) == "chg_new"
    # Applied, not recorded yet (a worker killed before): still rolling out, so undone on
    # failure.
    assert is_rolling_out(complete, "chg_new")
    complete["metadata"]["annotations"]["promenade.dev/rolled-out"] = "chg_new"
    # Recorded: a failure now is the running instance's (the supervisor's start): not undone.
    assert not is_rolling_out(complete, "chg_new")
    assert is_rolling_out(complete, "chg_next")
