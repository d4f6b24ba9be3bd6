"""First users and tokens, for scripts, tests and the first start of embedded mode."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Membership, Organization, Role, User
from app.services.members import find_or_create_user
from app.services.organizations import create_organization
from app.services.tokens import create_api_token


@dataclass(frozen=True)
class Bootstrapped:
    user: User
    organization: Organization | None
    token: str


async def bootstrap(
    session: AsyncSession, *, email: str, name: str | None, organization_slug: str | None = None
) -> Bootstrapped:
    """Create the user (and the organization) when missing, and issue a new token.

    This is the operator's command, run with access to the database: a user who is not yet a
    member of the named organization becomes its ADMIN; an existing member keeps their role.
    """
    user = await find_or_create_user(session, email=email, name=name)
    org: Organization | None = None
    if organization_slug is not None:
        org = (
            await session.exec(select(Organization).where(Organization.slug == organization_slug))
        ).first()
        if org is None:
            org = await create_organization(
                session,
                actor=user,
                slug=organization_slug,
                name=organization_slug.replace("-", " ").title(),
            )
        else:
            member = (
                await session.exec(
                    select(Membership).where(
                        Membership.organization_id == org.id, Membership.user_id == user.id
                    )
                )
            ).first()
            if member is None:
                session.add(Membership(organization_id=org.id, user_id=user.id, role=Role.ADMIN))
    _, secret = await create_api_token(session, actor=user, name="bootstrap")
    return Bootstrapped(user=user, organization=org, token=secret)


async def is_empty(session: AsyncSession) -> bool:
    return (await session.exec(select(User.id).limit(1))).first() is None
