"""Who is calling, and what their role in an organization lets them do."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import timedelta
from typing import Protocol, TypeVar

from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ApiToken, Membership, Role, User
from app.models.base import utcnow
from app.services.errors import Forbidden, NotFound

TOKEN_PREFIX = "prm_"
# lastUsedAt is written at most this often, so reads do not turn into writes.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class Permission(enum.StrEnum):
    READ = "read"
    DEVELOP = "develop"  # projects, integrations, builds, configuration, deploys, promotions
    ADMINISTER = "administer"  # environments, pipelines, data planes, members, policies
    REVIEW = "review"  # promotion requests


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.DEVELOPER: frozenset({Permission.READ, Permission.DEVELOP}),
    Role.APPROVER: frozenset({Permission.READ, Permission.REVIEW}),
    Role.VIEWER: frozenset({Permission.READ}),
}


def hash_token(token: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


# The statement of every authenticated request, built once: building it cost more than running
# it on SQLite.
_TOKEN_AND_USER = (
    select(ApiToken, User)
    .join(User, col(User.id) == col(ApiToken.user_id))
    .where(col(ApiToken.token_hash) == bindparam("token_hash"))
)


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def authenticate(session: AsyncSession, token: str) -> User | None:
    """The user a bearer token belongs to, or None for an unknown or revoked token."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (await session.exec(_TOKEN_AND_USER, params={"token_hash": hash_token(token)})).first()
    if row is None:
        return None
    api_token, user = row
    now = utcnow()
    if api_token.last_used_at is None or now - api_token.last_used_at > LAST_USED_RESOLUTION:
        api_token.last_used_at = now
        session.add(api_token)
        await session.commit()
    return user


async def role_in(session: AsyncSession, *, user_id: str, organization_id: str) -> Role | None:
    membership = (
        await session.exec(
            select(Membership).where(
                Membership.user_id == user_id, Membership.organization_id == organization_id
            )
        )
    ).first()
    return membership.role if membership else None


async def roles_of(session: AsyncSession, user_id: str) -> dict[str, Role]:
    """The user's role in each organization they are a member of."""
    rows = await session.exec(
        select(Membership.organization_id, Membership.role).where(Membership.user_id == user_id)
    )
    return {organization_id: Role(role) for organization_id, role in rows.all()}


class OrganizationOwned(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def organization_id(self) -> str: ...


Owned = TypeVar("Owned", bound=OrganizationOwned)


async def authorize(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    permission: Permission,
    subject_id: str | None = None,
) -> Role:
    """The actor's role, if it grants the permission.

    Not a member: NotFound, so that another organization's objects do not even show they exist.
    A member whose role does not allow it: Forbidden.
    """
    role = await role_in(session, user_id=actor.id, organization_id=organization_id)
    if role is None:
        raise NotFound("not found", id=subject_id or organization_id)
    if permission not in ROLE_PERMISSIONS[role]:
        raise Forbidden(f"the {role.value} role may not {permission.value} here")
    return role


async def get_owned(
    session: AsyncSession,
    model: type[Owned],
    object_id: str,
    *,
    actor: User,
    permission: Permission = Permission.READ,
) -> Owned:
    """Load an object of an organization the actor may act on, else NotFound/Forbidden."""
    obj = await session.get(model, object_id)
    if obj is None:
        raise NotFound(f"no {model.__name__.lower()} with id {object_id}", id=object_id)
    try:
        await authorize(
            session,
            actor=actor,
            organization_id=obj.organization_id,
            permission=permission,
            subject_id=object_id,
        )
    except NotFound:
        raise NotFound(f"no {model.__name__.lower()} with id {object_id}", id=object_id) from None
    return obj
