"""Data planes: where an organization's environments run their integrations."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DataPlane, RuntimeKind, User
from app.services import audit
from app.services.auth import Permission
from app.services.errors import Conflict, InvalidInput
from app.services.names import dns_label
from app.services.organizations import get_organization

MAX_SETTINGS_BYTES = 16_384


async def create_data_plane(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    name: str,
    runtime: RuntimeKind,
    settings: Any = None,
) -> DataPlane:
    await get_organization(session, organization_id, actor=actor, permission=Permission.ADMINISTER)
    name = dns_label(name.strip(), field="name")
    if settings is None:
        settings = {}
    if not isinstance(settings, dict):
        raise InvalidInput("settings must be a JSON object", field="settings")
    if len(json.dumps(settings)) > MAX_SETTINGS_BYTES:
        raise InvalidInput(f"settings must be at most {MAX_SETTINGS_BYTES} bytes", field="settings")
    taken = (
        await session.exec(
            select(DataPlane).where(
                DataPlane.organization_id == organization_id, DataPlane.name == name
            )
        )
    ).first()
    if taken is not None:
        raise Conflict(f"a data plane named {name!r} exists already")
    plane = DataPlane(
        organization_id=organization_id, name=name, runtime=runtime, settings=settings
    )
    session.add(plane)
    await session.flush()
    audit.record(
        session,
        organization_id=organization_id,
        actor=actor,
        action="data_plane.created",
        subject_id=plane.id,
        name=plane.name,
        runtime=plane.runtime.value,
    )
    return plane


async def default_data_plane(session: AsyncSession, organization_id: str) -> DataPlane:
    """The organization's first data plane (``local`` for every organization made here)."""
    return (
        await session.exec(
            select(DataPlane)
            .where(DataPlane.organization_id == organization_id)
            .order_by(col(DataPlane.id))
            .limit(1)
        )
    ).one()
