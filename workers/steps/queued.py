"""QUEUED -> APPLYING_CONFIGURATION: the change is taken by this worker."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ChangeStatus, DeploymentChange
from app.services.dataplanes import LocalAdmission
from app.services.lifecycle import claim_change, follow_change
from workers.metrics import timed_step
from workers.steps.ending import fail


@timed_step(ChangeStatus.QUEUED)
async def take(
    session: AsyncSession, change: DeploymentChange, *, admission: LocalAdmission | None
) -> bool:
    """True once the change is APPLYING_CONFIGURATION. False when it does not run here: a
    cancel came first, or this data plane does not run its organization (then it FAILED)."""
    if admission is not None:
        refusal = await admission.refusal(session, change.organization_id)
        if refusal is not None:
            await fail(session, change, refusal)
            return False
    # Conditional: a cancel may have won the race for this change.
    if not await claim_change(session, change, ChangeStatus.APPLYING_CONFIGURATION):
        return False
    await follow_change(session, change, detail=None)
    return True
