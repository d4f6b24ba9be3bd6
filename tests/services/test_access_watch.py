"""The access watch: one reading for every open websocket tells the sockets whose token was
revoked, and gives subscriptions their viewers' current roles, in a bounded number of queries
however many sockets are open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db import create_session_factory
from app.models import ApiToken, Role, User
from app.services import access_watch
from app.services.access_watch import MAX_FAILED_READINGS, AccessWatch, Lost, Reading
from app.services.members import add_member, remove_member
from app.services.tokens import create_api_token, revoke_api_token
from tests.conftest import make_organization, make_user
from tests.support.statements import statements


async def _members(session: AsyncSession, count: int) -> tuple[User, str, list[tuple[User, str]]]:
    admin = await make_user(session, "admin@watch.example.com")
    org = await make_organization(session, admin, slug="watch")
    members = []
    for n in range(count):
        user = await make_user(session, f"member{n}@watch.example.com")
        await add_member(
            session,
            actor=admin,
            organization_id=org.id,
            email=user.email,
            name=None,
            role=Role.DEVELOPER,
        )
        _, secret = await create_api_token(session, actor=user, name="socket")
        members.append((user, secret))
    await session.commit()
    return admin, org.id, members


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(access_watch, "CHUNK", 2)
    yield


async def test_one_reading_finds_the_revoked_token_and_the_removed_member(
    engine: AsyncEngine, session: AsyncSession, small_chunks: None
) -> None:
    admin, org_id, members = await _members(session, 5)
    admin_id, ids = admin.id, [user.id for user, _ in members]
    watch = AccessWatch(create_session_factory(engine), interval_s=60)
    lost: dict[str, list[Lost]] = {user_id: [] for user_id in ids}
    for user_id, (_, secret) in zip(ids, members, strict=True):
        watch.watch(secret, user_id, lost[user_id].append)
    revoked, removed, kept = ids[0], ids[1], ids[2]
    await _revoke(session, members[0][0])
    await remove_member(session, actor=admin, organization_id=org_id, user_id=removed)
    await session.commit()

    await watch.check()
    assert lost[revoked] == [Lost.REVOKED]
    # A token in use on a socket is marked used, as a request marks it.
    in_use = await session.exec(select(ApiToken).where(ApiToken.user_id == kept))
    assert in_use.one().last_used_at is not None

    with statements(engine) as sent:
        await watch.check()
    # One query per chunk (of two here) of the 5 tokens, one per chunk of the 5 users, and
    # no write (the tokens were marked used less than a minute ago).
    assert len(sent) == 3 + 3
    assert lost[revoked] == [Lost.REVOKED, Lost.REVOKED]  # until its socket closes
    assert all(not lost[user_id] for user_id in ids[1:])
    assert watch.roles_of(removed) == {}
    assert watch.roles_of(kept) == {org_id: Role.DEVELOPER}
    assert watch.roles_of(admin_id) is None  # not watched: the caller reads it itself
    await watch.close()


async def test_readings_that_fail_in_a_row_close_every_socket_as_unchecked(
    engine: AsyncEngine, session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, org_id, members = await _members(session, 2)
    watch = AccessWatch(create_session_factory(engine), interval_s=60)
    lost: list[Lost] = []
    for user, secret in members:
        watch.watch(secret, user.id, lost.append)
    await watch.check()
    assert watch.roles_of(members[0][0].id) == {org_id: Role.DEVELOPER}

    async def unanswered(self: AccessWatch, *args: object) -> Reading:
        raise ConnectionError("the database does not answer")

    monkeypatch.setattr(AccessWatch, "read", unanswered)
    for _ in range(MAX_FAILED_READINGS - 1):
        await watch.check()
    assert lost == []  # a few failures are borne
    await watch.check()
    assert lost == [Lost.UNCHECKED, Lost.UNCHECKED]
    assert watch.roles_of(members[0][0].id) is None  # nothing stale is trusted
    await watch.close()


async def test_a_socket_no_longer_watched_is_not_told(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    _, _, members = await _members(session, 1)
    (user, secret) = members[0]
    watch = AccessWatch(create_session_factory(engine), interval_s=60)
    lost: list[Lost] = []
    watch.unwatch(watch.watch(secret, user.id, lost.append))
    await _revoke(session, user)
    await session.commit()
    await watch.check()
    assert lost == []
    await watch.close()


async def _revoke(session: AsyncSession, user: User) -> None:
    token = (await session.exec(select(ApiToken).where(ApiToken.user_id == user.id))).one()
    await revoke_api_token(session, actor=user, token_id=token.id)
