"""Data planes: where an organization's environments run their integrations, and how their
commands find the workers that serve them.

A data plane's commands are routed by its identity: the routing key (and so the RabbitMQ queue
``promenade.execute.<key>``) is the data plane's id. The one exception is the installation's
own ``local`` data plane, whose rows (one per organization) all route to ``local``: the
operator's local workers serve it, for the organizations the operator admits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import DataPlane, Organization, RuntimeKind, User
from app.services import audit
from app.services.auth import Permission
from app.services.dataplane_settings import check_settings
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.names import dns_label
from app.services.organizations import get_organization

MAX_SETTINGS_BYTES = 16_384
# The routing key of the installation's own local data plane.
LOCAL_ROUTING_KEY = "local"


def routing_key(plane: DataPlane) -> str:
    """Where the data plane's commands go: its id, or ``local`` for the installation's own."""
    return LOCAL_ROUTING_KEY if plane.installation_local else plane.id


def served_by(key: str) -> ColumnElement[bool]:
    """A condition on DataPlane: the data planes whose commands route to ``key``."""
    if key == LOCAL_ROUTING_KEY:
        return col(DataPlane.installation_local).is_(True)
    return col(DataPlane.id) == key


@dataclass(frozen=True)
class ServedDataPlane:
    """A data plane as a worker serves it: one queue, one runtime."""

    routing_key: str
    runtime: RuntimeKind
    settings: dict[str, Any]
    # How people name it: "local", or "<organization slug>/<name>".
    label: str
    # The slug of the organization it belongs to (None: the installation's own).
    organization: str | None = None

    @property
    def is_installation_local(self) -> bool:
        return self.routing_key == LOCAL_ROUTING_KEY


INSTALLATION_LOCAL = ServedDataPlane(
    routing_key=LOCAL_ROUTING_KEY,
    runtime=RuntimeKind.LOCAL_PROCESS,
    settings={},
    label=LOCAL_ROUTING_KEY,
)


def served(plane: DataPlane, organization_slug: str) -> ServedDataPlane:
    if plane.installation_local:
        return INSTALLATION_LOCAL
    return ServedDataPlane(
        routing_key=plane.id,
        runtime=plane.runtime,
        settings=dict(plane.settings),
        label=f"{organization_slug}/{plane.name}",
        organization=organization_slug,
    )


async def resolve_data_plane(session: AsyncSession, selector: str) -> ServedDataPlane:
    """What ``promenade worker --data-plane SELECTOR`` serves: ``local`` (the installation's
    own), a data plane id, or ``ORGANIZATION/NAME``. NotFound names the selector."""
    selector = selector.strip()
    if selector == LOCAL_ROUTING_KEY:
        return INSTALLATION_LOCAL
    query = select(DataPlane, Organization.slug).join(
        Organization, col(Organization.id) == col(DataPlane.organization_id)
    )
    if "/" in selector:
        slug, _, name = selector.partition("/")
        query = query.where(Organization.slug == slug.lower(), DataPlane.name == name.lower())
    else:
        query = query.where(DataPlane.id == selector)
    row = (await session.exec(query)).first()
    if row is None:
        raise NotFound(
            f"no data plane {selector!r} (give local, a data plane id, or ORGANIZATION/NAME)",
            id=selector,
        )
    plane, slug = row
    return served(plane, slug)


async def served_data_planes(
    session: AsyncSession, runtimes: frozenset[RuntimeKind]
) -> list[ServedDataPlane]:
    """Every data plane of the installation with one of these runtimes (embedded mode serves
    them all), the installation's local one first when LOCAL_PROCESS is asked for."""
    rows = (
        await session.exec(
            select(DataPlane, Organization.slug)
            .join(Organization, col(Organization.id) == col(DataPlane.organization_id))
            .where(
                col(DataPlane.runtime).in_(runtimes),
                col(DataPlane.installation_local).is_(False),
            )
            .order_by(col(DataPlane.id))
        )
    ).all()
    planes = [served(plane, slug) for plane, slug in rows]
    if RuntimeKind.LOCAL_PROCESS in runtimes:
        planes.insert(0, INSTALLATION_LOCAL)
    return planes


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
    check_settings(runtime, settings)
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


@dataclass(frozen=True)
class LocalAdmission:
    """Which organizations the installation's local data plane runs: the operator's choice
    (``PROMENADE_LOCAL_ORGANIZATIONS``); ``slugs`` None admits every one."""

    slugs: frozenset[str] | None = None

    def admits(self, organization_slug: str) -> bool:
        return self.slugs is None or organization_slug in self.slugs

    async def refusal(self, session: AsyncSession, organization_id: str) -> str | None:
        """Why a change of this organization may not run on the local data plane, or None."""
        if self.slugs is None:
            return None
        organization = await session.get(Organization, organization_id)
        slug = organization.slug if organization else organization_id
        if self.admits(slug):
            return None
        return (
            f"the installation's local data plane does not run organization {slug!r} (the "
            "operator admits it with PROMENADE_LOCAL_ORGANIZATIONS); an ADMIN can put the "
            "environment on a data plane of the organization's own"
        )
