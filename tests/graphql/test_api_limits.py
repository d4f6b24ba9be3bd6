"""What one request may ask for, and what an unexpected failure shows: limits on depth, aliases,
tokens and page sizes refuse a request before any resolver runs, with a message that says why;
an exception inside a resolver reaches the client as "Unexpected error." and nothing more."""

from __future__ import annotations

import json
import logging
from typing import Any, NoReturn

import pytest
import sqlalchemy as sa
from graphql.language import Lexer, Source, TokenKind
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.graphql.pagination import MAX_PAGE_SIZE
from app.graphql.schema import MAX_ALIASES, MAX_QUERY_DEPTH, MAX_TOKENS
from app.services import organizations, tokens
from app.services.projects import create_project
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_organization, make_user


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        statement = sa.select(sa.func.count()).select_from(SQLModel.metadata.tables[table])
        return int((await connection.execute(statement)).scalar_one())


def refusal(body: dict[str, Any]) -> str:
    """The one error message of a request that was refused before it ran."""
    assert body.get("data") is None, body
    assert len(body["errors"]) == 1, body["errors"]
    message: str = body["errors"][0]["message"]
    assert message != "Unexpected error."
    return message


# ---- depth --------------------------------------------------------------------------------


def deep_mutation(slug: str, depth: int) -> str:
    """createOrganization with fields down to ``depth`` below it (the root field is at depth 0):
    environments { organization { environments { ... id } } }."""
    selection = "id"
    for level in range(depth - 1, 0, -1):
        field = "environments" if level % 2 == 1 else "organization"
        selection = f"{field} {{ {selection} }}"
    return (
        f'mutation {{ createOrganization(slug: "{slug}", name: "{slug}") '
        f"{{ ... on Organization {{ {selection} }} }} }}"
    )


async def test_a_query_deeper_than_the_limit_is_refused_before_it_runs(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    ada = await make_user(session, "ada@example.com")
    body = await api.raw(deep_mutation("too-deep", MAX_QUERY_DEPTH + 1), as_user=ada)
    message = refusal(body)
    assert "depth" in message and str(MAX_QUERY_DEPTH) in message
    assert await count(engine, "organizations") == 0  # the mutation did not run

    # At the limit, the same request runs.
    data = await api.execute(deep_mutation("deep-enough", MAX_QUERY_DEPTH), as_user=ada)
    assert data["createOrganization"]["environments"][0]["organization"]
    assert await count(engine, "organizations") == 1


# ---- aliases ------------------------------------------------------------------------------


def aliased_mutation(aliases: int) -> str:
    fields = " ".join(
        f't{i}: createApiToken(name: "t{i}") {{ __typename }}' for i in range(aliases)
    )
    return f"mutation {{ {fields} }}"


async def test_more_aliases_than_the_limit_are_refused_before_they_run(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    ada = await make_user(session, "ada@example.com")
    await api.token_for(ada)
    tokens_before = await count(engine, "api_tokens")
    body = await api.raw(aliased_mutation(MAX_ALIASES + 1), as_user=ada)
    message = refusal(body)
    assert "aliases" in message and str(MAX_ALIASES) in message
    assert await count(engine, "api_tokens") == tokens_before

    data = await api.execute(aliased_mutation(MAX_ALIASES), as_user=ada)
    assert len(data) == MAX_ALIASES
    assert await count(engine, "api_tokens") == tokens_before + MAX_ALIASES


# ---- tokens -------------------------------------------------------------------------------


def token_count(document: str) -> int:
    """Lexical tokens as the parser's limit counts them (not the start and end markers)."""
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def wide_integration(project_id: str, tokens: int) -> str:
    """A createIntegration mutation of exactly ``tokens`` tokens: a config schema of keys of 17
    tokens each, and a few ``__typename`` selections for the rest. It stays under the
    schema's own limit of keys, so that it succeeds when it is allowed to run."""

    def document(keys: int, padding: int) -> str:
        schema = " ".join(
            f'{{key: "K{i}", type: STRING, required: true, secret: false, description: "d"}}'
            for i in range(keys)
        )
        selection = " ".join(["__typename"] * (1 + padding))
        return (
            f'mutation {{ createIntegration(input: {{projectId: "{project_id}", name: "Wide", '
            f"configSchema: [{schema}]}}) {{ {selection} }} }}"
        )

    keys, padding = divmod(tokens - token_count(document(0, 0)), 17)
    wide = document(keys, padding)
    assert token_count(wide) == tokens
    return wide


async def test_a_document_of_more_tokens_than_the_limit_is_refused_before_it_runs(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    ada = await make_user(session, "ada@example.com")
    org = await make_organization(session, ada)
    project = await create_project(session, actor=ada, organization_id=org.id, name="One")
    await session.commit()
    body = await api.raw(wide_integration(project.id, MAX_TOKENS + 1), as_user=ada)
    message = refusal(body)
    assert "tokens" in message and str(MAX_TOKENS) in message
    assert await count(engine, "integrations") == 0

    data = await api.execute(wide_integration(project.id, MAX_TOKENS), as_user=ada)
    assert data["createIntegration"]["__typename"] == "Integration"
    assert await count(engine, "integrations") == 1


# ---- page sizes ---------------------------------------------------------------------------

PROJECTS = 'query ($first: Int) { organization(slug: "acme") { projects(first: $first) { totalCount edges { node { name } } } } }'  # noqa: E501


async def test_a_page_size_out_of_bounds_is_a_clear_error(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    await make_organization(session, ada)
    for first in (MAX_PAGE_SIZE + 1, 10_000, -1):
        body = await api.raw(PROJECTS, {"first": first}, as_user=ada)
        assert body["errors"][0]["message"] == f"first must be between 0 and {MAX_PAGE_SIZE}"
        assert body["errors"][0]["path"] == ["organization", "projects"]


async def test_page_sizes_up_to_the_cap_are_served(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    org = await make_organization(session, ada)
    for name in ("One", "Two", "Three"):
        await create_project(session, actor=ada, organization_id=org.id, name=name)
    await session.commit()
    for first, shown in ((MAX_PAGE_SIZE, 3), (2, 2), (0, 0), (None, 3)):
        data = await api.execute(PROJECTS, {"first": first}, as_user=ada)
        page = data["organization"]["projects"]
        assert page["totalCount"] == 3
        assert len(page["edges"]) == shown


CAPPED = [
    "projects(first: 101) { totalCount }",
    "projects { edges { node { integrations(first: 101) { totalCount } } } }",
    "environments { deployments(first: 101) { totalCount } }",
]


async def test_every_connection_is_capped(api: GraphQLClient, session: AsyncSession) -> None:
    ada = await make_user(session, "ada@example.com")
    org = await make_organization(session, ada)
    await create_project(session, actor=ada, organization_id=org.id, name="One")
    await session.commit()
    for field in CAPPED:
        body = await api.raw(f'{{ organization(slug: "acme") {{ {field} }} }}', as_user=ada)
        message = body["errors"][0]["message"]
        assert message == f"first must be between 0 and {MAX_PAGE_SIZE}", field


async def test_a_cursor_that_was_not_given_out_is_a_clear_error(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    await make_organization(session, ada)
    body = await api.raw(
        '{ organization(slug: "acme") { projects(after: "not a cursor") { totalCount } } }',
        as_user=ada,
    )
    assert body["errors"][0]["message"] == "after is not a cursor this API gave out"


# ---- masking ------------------------------------------------------------------------------


def explode(*_: object, **__: object) -> NoReturn:
    raise RuntimeError("secret internals")


def assert_masked(body: dict[str, Any]) -> None:
    assert [error["message"] for error in body["errors"]] == ["Unexpected error."]
    text = json.dumps(body)
    for internal in ("secret internals", "RuntimeError", "Traceback", ".py", "stack"):
        assert internal not in text, text


async def test_an_unexpected_error_in_a_query_is_masked(
    api: GraphQLClient,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ada = await make_user(session, "ada@example.com")
    await make_organization(session, ada)
    monkeypatch.setattr(organizations, "find_by_slug", explode)
    with caplog.at_level(logging.ERROR):
        body = await api.raw('{ organization(slug: "acme") { id } }', as_user=ada)
    assert body["status_code"] == 200
    assert body["data"] == {"organization": None}
    assert_masked(body)
    # The operator still finds out what happened.
    assert "secret internals" in caplog.text


async def test_an_unexpected_error_in_a_mutation_is_masked_and_changes_nothing(
    api: GraphQLClient,
    session: AsyncSession,
    engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ada = await make_user(session, "ada@example.com")
    await api.token_for(ada)
    tokens_before = await count(engine, "api_tokens")
    original = tokens.create_api_token

    async def half_done(session: AsyncSession, **kwargs: Any) -> NoReturn:
        await original(session, **kwargs)  # a row is written, then something breaks
        raise RuntimeError("secret internals")

    monkeypatch.setattr(tokens, "create_api_token", half_done)
    body = await api.raw('mutation { createApiToken(name: "x") { __typename } }', as_user=ada)
    assert body["data"] is None
    assert_masked(body)
    assert await count(engine, "api_tokens") == tokens_before
