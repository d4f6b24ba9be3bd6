"""RESTARTING: the new instance starts and answers its health check, the route moves to it, and
the old instances retire. No transaction is held meanwhile; the runtime's calls are idempotent
by change id, so a worker killed in between leaves what the next one's same calls pick up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.models import ChangeKind, ChangeStatus
from workers.instances import InstanceTarget, start_instance
from workers.metrics import timed_step
from workers.runtimes.base import Runtime

# Called with the name of what was just done ("STARTED", "ROUTED"): the crash tests pause there.
Pause = Callable[[str], Awaitable[None]]


@timed_step(ChangeStatus.RESTARTING)
async def restart(
    runtime: Runtime, target: InstanceTarget, *, health_timeout_s: float, pause: Pause
) -> str | None:
    """The endpoint URL that serves the change's instance now (None for a suspend, which stops
    the deployment's instances instead). StartFailed, without secrets, when it does not start:
    whatever ran before keeps running."""
    change = target.change
    if change.kind is ChangeKind.SUSPEND:
        await runtime.stop(change.deployment_id, target.route)
        return None
    instance = await start_instance(runtime, target, health_timeout_s=health_timeout_s)
    await pause("STARTED")
    endpoint = await runtime.route(change.deployment_id, target.route, instance)
    await runtime.retire_others(change.deployment_id, keep_change_id=change.id)
    await pause("ROUTED")
    return endpoint
