"""VERIFYING: the new instance serves; the deployment's checks ask its endpoint, attempt by
attempt (app/services/verification.py). Nothing is written here: the outcome ends the change
in one commit (``ending.verified`` or ``ending.verification_failed``)."""

from __future__ import annotations

from app.models import ChangeStatus
from app.services.verification import Outcome, Verification, run_checks
from workers.metrics import timed_step


@timed_step(ChangeStatus.VERIFYING)
async def verify(endpoint: str, verification: Verification) -> Outcome:
    return await run_checks(endpoint, verification)
