"""The audit log: who did what, to which object, when.

Every state-changing mutation and every worker outcome records one entry in the transaction of
the change itself, so the log and the state never disagree. ``detail`` names keys, never
values: configuration and overrides appear as the list of keys they touched.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import AuditEvent, User


def record(
    session: AsyncSession,
    *,
    organization_id: str,
    actor: User | str | None,
    action: str,
    subject_id: str,
    **detail: Any,
) -> AuditEvent:
    actor_id = actor.id if isinstance(actor, User) else actor
    event = AuditEvent(
        organization_id=organization_id,
        actor_id=actor_id,
        action=action,
        subject_id=subject_id,
        detail={key: value for key, value in detail.items() if value is not None},
    )
    session.add(event)
    return event
