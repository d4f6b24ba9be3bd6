"""When a change's rollout is complete or failed, what a failure says, and what a failed rollout
goes back to: pure functions of the objects as the Kubernetes API returns them (camelCase dicts,
``ApiClient.sanitize_for_serialization`` of the client's models).

Complete is what ``kubectl rollout status`` waits for: the controller observed the Deployment's
generation, every replica runs the new template and is available, no old replica is left. A
rollout fails when the Deployment says so (``ProgressDeadlineExceeded``, ``ReplicaFailure``) or
when a pod of the change cannot get better by waiting: its image cannot be pulled, it crash-loops,
it was killed for its memory, its container cannot be created. A pod that is merely not ready
(its readiness probe fails, no node has room for it) is given until the progress deadline, and
then the failure says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.runtimes.kubernetes.manifests import (
    ANNOTATION_ROLLED_OUT,
    CONTAINER_NAME,
    LABEL_CHANGE,
)

REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"

# Waiting reasons that waiting does not cure. ErrImagePull is not one: the kubelet retries a pull
# once before it says ImagePullBackOff, and a registry's hiccup passes.
_HOPELESS_WAITING = {
    "ImagePullBackOff": "its image cannot be pulled",
    "InvalidImageName": "its image name is invalid",
    "ErrImageNeverPull": "its image is not on the node and the pull policy forbids pulling",
    "CreateContainerConfigError": "its container's configuration is wrong",
    "CreateContainerError": "its container cannot be created",
    "RunContainerError": "its container cannot be started",
}


@dataclass(frozen=True)
class Complete:
    pass


@dataclass(frozen=True)
class Progressing:
    detail: str


@dataclass(frozen=True)
class Failed:
    reason: str


RolloutState = Complete | Progressing | Failed


def rollout_state(
    deployment: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    change_id: str,
    memory_limit: str = "",
) -> RolloutState:
    """Where the rollout of ``change_id`` stands, from the Deployment and the pods of its
    deployment (those of other changes are ignored)."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    metadata = deployment.get("metadata") or {}
    running = template_change(deployment)
    if running != change_id:
        return Failed(f"the Deployment runs change {running} now, not {change_id}")
    ours = [pod for pod in pods if _labels(pod).get(LABEL_CHANGE) == change_id]
    hopeless = pod_failure(ours, memory_limit=memory_limit)
    if hopeless is not None:
        return Failed(hopeless)
    # Until the controller has seen the new template, its conditions are the last rollout's
    # (a ProgressDeadlineExceeded of a rollout that was undone, say).
    generation = int(metadata.get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return Progressing("waiting for the Deployment controller to see the change")
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        waiting = pod_waiting(ours)
        return Failed(
            f"the rollout made no progress within {spec.get('progressDeadlineSeconds', 600)} s"
            + (f": {waiting}" if waiting else f" ({progressing.get('message', '')})")
        )
    replica_failure = conditions.get("ReplicaFailure") or {}
    if replica_failure.get("status") == "True":
        said = replica_failure.get("message") or replica_failure.get("reason")
        return Failed(f"its pods cannot be created: {said}")
    wanted = int(spec.get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return Progressing(f"{updated} of {wanted} new replicas updated")
    if total > updated:
        return Progressing(f"{total - updated} old replicas pending termination")
    if available < updated:
        return Progressing(f"{available} of {updated} updated replicas available")
    return Complete()


def pod_failure(pods: Sequence[Mapping[str, Any]], *, memory_limit: str = "") -> str | None:
    """Why one of the change's pods will not become ready however long one waits, if so."""
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "a pod")
        status = pod.get("status") or {}
        if status.get("phase") == "Failed":
            return (
                f"pod {name} failed: {status.get('reason', '')} {status.get('message', '')}".strip()
            )
        for container in _containers(pod):
            state = container.get("state") or {}
            last = container.get("lastState") or {}
            waiting = state.get("waiting") or {}
            reason = waiting.get("reason", "")
            if reason in _HOPELESS_WAITING:
                message = waiting.get("message", "")
                return f"pod {name}: {_HOPELESS_WAITING[reason]} ({reason}: {message})"
            for terminated in (state.get("terminated") or {}, last.get("terminated") or {}):
                if terminated.get("reason") == "OOMKilled":
                    limit = f" (its limit is {memory_limit})" if memory_limit else ""
                    return f"pod {name} was killed for running out of memory{limit}"
            if reason == "CrashLoopBackOff":
                return (
                    f"pod {name} keeps exiting: {_ended(last.get('terminated') or {})} ({reason})"
                )
    return None


def pod_waiting(pods: Sequence[Mapping[str, Any]]) -> str:
    """What the change's pods wait for, as their status says (not ready, not scheduled)."""
    said: list[str] = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "a pod")
        conditions = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
        scheduled = conditions.get("PodScheduled") or {}
        if scheduled.get("status") == "False":
            said.append(f"pod {name} is not scheduled: {scheduled.get('message', '')}".strip())
            continue
        for container in _containers(pod):
            if not container.get("ready"):
                state = container.get("state") or {}
                if "running" in state:
                    said.append(f"pod {name} runs but its readiness probe does not succeed")
                elif "waiting" in state:
                    waiting = state["waiting"]
                    what = f"{waiting.get('reason', '')} {waiting.get('message', '')}".strip()
                    said.append(f"pod {name} waits: {what}")
    return "; ".join(said)


def is_rolling_out(deployment: Mapping[str, Any] | None, change_id: str) -> bool:
    """Whether a start of ``change_id`` rolls the Deployment out (so that its failure is
    undone) rather than finds it rolled out already (so that a failure is the running
    instance's, reported and left to Kubernetes' restarts: a crash of what serves is no reason
    to go back to an older change behind the step machine's back). A worker killed before the
    rollout was recorded leaves it rolling out: the next start's failure is undone too."""
    if deployment is None:
        return True
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(ANNOTATION_ROLLED_OUT) != change_id)


def template_change(deployment: Mapping[str, Any]) -> str | None:
    """The change the Deployment's pod template is of."""
    template = (deployment.get("spec") or {}).get("template") or {}
    change = ((template.get("metadata") or {}).get("labels") or {}).get(LABEL_CHANGE)
    return str(change) if change is not None else None


def previous_template(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """The pod template ``kubectl rollout undo`` would put back after a failed rollout: that of
    the Deployment's ReplicaSet that still serves (has ready replicas), else of the newest
    earlier revision; None when there is none (the first change of the deployment failed)."""
    uid = (deployment.get("metadata") or {}).get("uid")
    current = _revision(deployment)
    owned = [
        rs
        for rs in replica_sets
        if any(
            ref.get("uid") == uid for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
        )
        and _revision(rs) != current
    ]
    if not owned:
        return None
    serving = [rs for rs in owned if int((rs.get("status") or {}).get("readyReplicas") or 0) > 0]
    earlier = [rs for rs in owned if _revision(rs) < current]
    chosen = max(serving or earlier or owned, key=_revision)
    template = dict((chosen.get("spec") or {}).get("template") or {})
    metadata = dict(template.get("metadata") or {})
    metadata["labels"] = {
        k: v for k, v in (metadata.get("labels") or {}).items() if k != POD_TEMPLATE_HASH
    }
    template["metadata"] = metadata
    return template


def rolled_back(applied: Mapping[str, Any], template: Mapping[str, Any]) -> dict[str, Any]:
    """The Deployment ``applied`` with ``template`` (``previous_template``) in place of its own,
    to apply by the same field manager: the fields the API filled in (defaults) become the
    manager's too, which changes nothing they say."""
    template = dict(template)
    metadata = {
        k: v for k, v in (template.get("metadata") or {}).items() if k != "creationTimestamp"
    }
    template["metadata"] = metadata
    labels = {**applied["metadata"]["labels"]}
    change = (metadata.get("labels") or {}).get(LABEL_CHANGE)
    if change:
        labels[LABEL_CHANGE] = change
    return {
        **applied,
        "metadata": {**applied["metadata"], "labels": labels},
        "spec": {**applied["spec"], "template": template},
    }


def configuration_in_use(
    deployment: Mapping[str, Any] | None, replica_sets: Sequence[Mapping[str, Any]]
) -> set[str]:
    """The ConfigMaps and Secrets that the Deployment's template or a ReplicaSet that still has
    pods mounts or reads: those must stay; the deployment's others may go."""
    templates = [rs.get("spec", {}).get("template") or {} for rs in replica_sets if _has_pods(rs)]
    if deployment is not None:
        templates.append((deployment.get("spec") or {}).get("template") or {})
    names: set[str] = set()
    for template in templates:
        pod = template.get("spec") or {}
        for volume in pod.get("volumes") or []:
            for source in (volume.get("projected") or {}).get("sources") or []:
                names.update(
                    str(ref["name"])
                    for ref in (source.get("configMap"), source.get("secret"))
                    if ref and ref.get("name")
                )
        for container in pod.get("containers") or []:
            for variable in container.get("env") or []:
                value_from = variable.get("valueFrom") or {}
                for ref in (value_from.get("configMapKeyRef"), value_from.get("secretKeyRef")):
                    if ref and ref.get("name"):
                        names.add(str(ref["name"]))
    return names


def removable(
    objects: Sequence[Mapping[str, Any]], in_use: set[str], *, now: datetime, grace_s: float
) -> list[Mapping[str, Any]]:
    """The ConfigMaps and Secrets of a deployment that may be deleted: in use by nothing, and
    older than a start takes (a start applies them before the Deployment that mounts them)."""
    found = []
    for obj in objects:
        metadata = obj.get("metadata") or {}
        created = metadata.get("creationTimestamp")
        if metadata.get("name") in in_use or not created:
            continue
        age = (now - datetime.fromisoformat(str(created).replace("Z", "+00:00"))).total_seconds()
        if age >= grace_s:
            found.append(obj)
    return found


def _has_pods(replica_set: Mapping[str, Any]) -> bool:
    spec = replica_set.get("spec") or {}
    status = replica_set.get("status") or {}
    return int(spec.get("replicas") or 0) > 0 or int(status.get("replicas") or 0) > 0


def _revision(obj: Mapping[str, Any]) -> int:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION, 0))
    except ValueError:
        return 0


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return [s for s in statuses if s.get("name") == CONTAINER_NAME] or list(statuses)


def _ended(terminated: Mapping[str, Any]) -> str:
    if not terminated:
        return "it exited"
    code = terminated.get("exitCode")
    reason = terminated.get("reason")
    text = f"exited with code {code}" if code is not None else "exited"
    if reason and reason not in {"Error", "Completed"}:
        text += f" ({reason})"
    if terminated.get("message"):
        text += f": {terminated['message']}"
    return text
