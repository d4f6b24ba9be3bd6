"""API tokens: the secret is shown once; only its hash is kept."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import ApiToken, User
from app.services.auth import hash_token, new_token_secret
from app.services.errors import NotFound
from app.services.names import clean_name


async def create_api_token(
    session: AsyncSession, *, actor: User, name: str
) -> tuple[ApiToken, str]:
    """The stored token and its secret, which is not kept anywhere."""
    secret = new_token_secret()
    token = ApiToken(
        user_id=actor.id,
        name=clean_name(name, field="name", max_length=200),
        token_hash=hash_token(secret),
    )
    session.add(token)
    await session.flush()
    return token, secret


async def revoke_api_token(session: AsyncSession, *, actor: User, token_id: str) -> ApiToken:
    token = await session.get(ApiToken, token_id)
    if token is None or token.user_id != actor.id:
        raise NotFound(f"no API token with id {token_id}", id=token_id)
    await session.delete(token)
    await session.flush()
    return token
