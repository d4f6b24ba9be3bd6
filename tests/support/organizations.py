"""Users and organizations written through the services, for tests that start from them."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Organization, User
from app.services.organizations import create_organization


async def make_user(session: AsyncSession, email: str, name: str | None = None) -> User:
    user = User(email=email, name=name or email.split("@")[0])
    session.add(user)
    await session.commit()
    return user


async def make_organization(session: AsyncSession, admin: User, slug: str = "acme") -> Organization:
    org = await create_organization(session, actor=admin, slug=slug, name=slug.title())
    await session.commit()
    return org
