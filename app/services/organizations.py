"""Organizations: created with what a new one needs to promote from day one."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import (
    DataPlane,
    Environment,
    Membership,
    Organization,
    Pipeline,
    PipelineStage,
    Role,
    RuntimeKind,
    User,
)
from app.services import audit
from app.services.auth import Permission, authorize
from app.services.errors import Conflict, NotFound
from app.services.names import clean_name, dns_label, name_key

DEFAULT_DATA_PLANE = "local"
DEFAULT_PIPELINE = "Default"


async def create_organization(
    session: AsyncSession, *, actor: User, slug: str, name: str
) -> Organization:
    """The actor becomes ADMIN. It starts with the LOCAL_PROCESS data plane ``local``,
    Development and Production (critical), and the default pipeline Development -> Production."""
    slug = dns_label(slug.strip().lower(), field="slug")
    name = clean_name(name, field="name", max_length=200)
    if (await session.exec(select(Organization).where(Organization.slug == slug))).first():
        raise Conflict(f"the slug {slug!r} is taken")
    org = Organization(slug=slug, name=name)
    session.add(org)
    await session.flush()
    session.add(Membership(organization_id=org.id, user_id=actor.id, role=Role.ADMIN))
    plane = DataPlane(
        organization_id=org.id,
        name=DEFAULT_DATA_PLANE,
        runtime=RuntimeKind.LOCAL_PROCESS,
        installation_local=True,
    )
    session.add(plane)
    await session.flush()
    environments = [
        Environment(
            organization_id=org.id,
            data_plane_id=plane.id,
            name=env_name,
            name_key=name_key(env_name),
            dns_prefix=prefix,
            critical=critical,
            position=position,
        )
        for position, (env_name, prefix, critical) in enumerate(
            [("Development", "dev", False), ("Production", "prod", True)]
        )
    ]
    session.add_all(environments)
    pipeline = Pipeline(
        organization_id=org.id,
        name=DEFAULT_PIPELINE,
        name_key=name_key(DEFAULT_PIPELINE),
        is_default=True,
    )
    session.add(pipeline)
    await session.flush()
    session.add_all(
        PipelineStage(pipeline_id=pipeline.id, environment_id=env.id, position=env.position)
        for env in environments
    )
    await session.flush()
    audit.record(
        session,
        organization_id=org.id,
        actor=actor,
        action="organization.created",
        subject_id=org.id,
        slug=org.slug,
        name=org.name,
    )
    return org


async def get_organization(
    session: AsyncSession,
    organization_id: str,
    *,
    actor: User,
    permission: Permission = Permission.READ,
) -> Organization:
    org = await session.get(Organization, organization_id)
    if org is None:
        raise NotFound(f"no organization with id {organization_id}", id=organization_id)
    await authorize(
        session,
        actor=actor,
        organization_id=org.id,
        permission=permission,
        subject_id=organization_id,
    )
    return org


async def find_by_slug(session: AsyncSession, slug: str, *, actor: User) -> Organization | None:
    """The organization with this slug, if the actor is a member; None otherwise."""
    org = (await session.exec(select(Organization).where(Organization.slug == slug))).first()
    if org is None:
        return None
    try:
        await authorize(session, actor=actor, organization_id=org.id, permission=Permission.READ)
    except NotFound:
        return None
    return org
