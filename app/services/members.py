"""Members of an organization and their roles."""

from __future__ import annotations

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Membership, Role, User
from app.services import audit
from app.services.auth import Permission
from app.services.errors import Conflict, NotFound
from app.services.names import clean_email, clean_name
from app.services.organizations import get_organization


async def find_or_create_user(session: AsyncSession, *, email: str, name: str | None) -> User:
    """The user with this email; a new one when the email is new (named after the email's
    local part when no name is given)."""
    email = clean_email(email)
    user = (await session.exec(select(User).where(User.email == email))).first()
    if user is not None:
        return user
    user = User(
        email=email, name=clean_name(name or email.split("@")[0], field="name", max_length=200)
    )
    session.add(user)
    await session.flush()
    return user


async def add_member(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    email: str,
    name: str | None,
    role: Role,
) -> Membership:
    await get_organization(session, organization_id, actor=actor, permission=Permission.ADMINISTER)
    user = await find_or_create_user(session, email=email, name=name)
    existing = (
        await session.exec(
            select(Membership).where(
                Membership.organization_id == organization_id, Membership.user_id == user.id
            )
        )
    ).first()
    if existing is not None:
        raise Conflict(f"{user.email} is already a member, as {existing.role.value}")
    membership = Membership(organization_id=organization_id, user_id=user.id, role=role)
    session.add(membership)
    await session.flush()
    audit.record(
        session,
        organization_id=organization_id,
        actor=actor,
        action="member.added",
        subject_id=user.id,
        email=user.email,
        role=role.value,
    )
    return membership


async def remove_member(
    session: AsyncSession, *, actor: User, organization_id: str, user_id: str
) -> Membership:
    await get_organization(session, organization_id, actor=actor, permission=Permission.ADMINISTER)
    membership = (
        await session.exec(
            select(Membership).where(
                Membership.organization_id == organization_id, Membership.user_id == user_id
            )
        )
    ).first()
    if membership is None:
        raise NotFound(f"no member with user id {user_id}", id=user_id)
    if membership.role is Role.ADMIN:
        admins = (
            await session.exec(
                select(func.count())
                .select_from(Membership)
                .where(
                    Membership.organization_id == organization_id,
                    col(Membership.role) == Role.ADMIN,
                )
            )
        ).one()
        if admins <= 1:
            raise Conflict("the last ADMIN of an organization cannot be removed")
    await session.delete(membership)
    await session.flush()
    audit.record(
        session,
        organization_id=organization_id,
        actor=actor,
        action="member.removed",
        subject_id=user_id,
        role=membership.role.value,
    )
    return membership
