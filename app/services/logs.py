"""An instance's output, read through the API: the API asks the workers of the deployment's data
plane (a request over the bus), which answer with the last lines, secret values blanked out.
Reading logs is a DEVELOPER's and an ADMIN's right: output can show what a VIEWER may not see."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.messaging.bus import Bus, NoResponder
from app.models import DataPlane, Deployment, DeploymentStatus, Environment, User
from app.services.auth import ROLE_PERMISSIONS, Permission, role_in
from app.services.dataplanes import routing_key
from app.services.errors import Forbidden, InvalidInput, NotFound, Unavailable

MAX_LINES = 1000
# How long the API waits for a worker's answer.
ANSWER_WITHIN_S = 5.0


async def deployment_logs(
    session: AsyncSession, *, actor: User, bus: Bus | None, deployment: Deployment, lines: int
) -> list[str]:
    role = await role_in(session, user_id=actor.id, organization_id=deployment.organization_id)
    if role is None:
        raise NotFound(f"no deployment with id {deployment.id}", id=deployment.id)
    if Permission.DEVELOP not in ROLE_PERMISSIONS[role]:
        raise Forbidden(f"the {role.value} role may not read logs (DEVELOPER and ADMIN may)")
    if not 1 <= lines <= MAX_LINES:
        raise InvalidInput(f"lines must be between 1 and {MAX_LINES}", field="lines")
    if deployment.status is DeploymentStatus.NOT_DEPLOYED:
        return []
    environment = await session.get(Environment, deployment.environment_id)
    plane = await session.get(DataPlane, environment.data_plane_id) if environment else None
    if plane is None:
        raise NotFound("the deployment's data plane is gone", id=deployment.id)
    if bus is None:
        raise Unavailable("this API has no broker (PROMENADE_AMQP_URL) to ask a worker with")
    try:
        answer = await bus.request(
            routing_key(plane),
            {"kind": "logs", "deployment_id": deployment.id, "lines": lines},
            within_s=ANSWER_WITHIN_S,
        )
    except NoResponder:
        raise Unavailable(
            f"no worker of the data plane {plane.name!r} answered: is one running?"
        ) from None
    output = answer.get("lines")
    if not isinstance(output, list):
        raise Unavailable(f"the data plane {plane.name!r} could not read the logs")
    return [str(line) for line in output]
