"""Generated GraphQL operations (hypothesis-graphql, from schema.graphql) sent by every role:
whatever a client sends, the API answers without a 5xx, without an unexpected (masked) error,
without an internal detail in an error message, and goes on answering.

Bounded for the test command (PROMENADE_FUZZ_EXAMPLES, default 40 queries and 40 mutations per
database); a longer run:
    PROMENADE_FUZZ_EXAMPLES=2000 make pytest PYTEST_ARGS=tests/graphql/test_fuzz.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from hypothesis_graphql import strategies as graphql
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Role, User
from tests.graphql.governance import World, governed_world
from tests.support.graphql_client import GraphQLClient

SCHEMA = (Path(__file__).parents[2] / "schema.graphql").read_text()
EXAMPLES = int(os.environ.get("PROMENADE_FUZZ_EXAMPLES", "40"))
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "DateTime": st.datetimes().map(lambda moment: nodes.String(moment.isoformat() + "Z")),
    "JSON": st.one_of(
        st.integers().map(nodes.Int),
        st.text(max_size=20).map(nodes.String),
        st.just(nodes.Object([])),
    ),
}
# What no error message may show: the server's insides.
INTERNAL = ("Traceback", "sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", '.py"', "/app/")
ROLES = [Role.ADMIN, Role.DEVELOPER, Role.APPROVER, Role.VIEWER]


@pytest.fixture
async def users(api: GraphQLClient, session: AsyncSession) -> dict[Role, User]:
    world: World = await governed_world(api, session)
    return {
        Role.ADMIN: world.admin,
        Role.DEVELOPER: world.developer,
        Role.APPROVER: world.approver,
        Role.VIEWER: world.members["viewer"],
    }


async def check(api: GraphQLClient, user: User, document: str) -> None:
    body = await api.raw(document, {}, as_user=user)
    assert body["status_code"] < 500, (document, body)
    for error in body.get("errors") or []:
        message = str(error.get("message"))
        assert message != "Unexpected error.", (document, body)
        assert not any(mark in message for mark in INTERNAL), (document, message)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(
    document=graphql.queries(SCHEMA, custom_scalars=SCALARS),
    role=st.sampled_from(ROLES),
)
async def test_generated_queries_get_clean_answers(
    api: GraphQLClient, users: dict[Role, User], document: str, role: Role
) -> None:
    await check(api, users[role], document)


@FUZZ
@given(
    document=graphql.mutations(SCHEMA, custom_scalars=SCALARS),
    role=st.sampled_from(ROLES),
)
async def test_generated_mutations_get_clean_answers(
    api: GraphQLClient, users: dict[Role, User], document: str, role: Role
) -> None:
    await check(api, users[role], document)
    # And the API still answers.
    assert (await api.execute("{ __typename }", as_user=users[Role.VIEWER])) == {
        "__typename": "Query"
    }
