"""Identity over the API: bearer authentication, API tokens, members, and what a member of one
organization can see of another."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.main import create_app
from app.models import Deployment, Membership, Organization, Role, User
from app.services.projects import create_build, create_integration, create_project
from app.services.tokens import create_api_token, revoke_api_token
from app.settings import Settings
from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_organization, make_user

VIEWER = "{ viewer { user { id email name } memberships { role organization { slug } } } }"

CREATE_TOKEN = """
mutation ($name: String!) {
  createApiToken(name: $name) {
    __typename
    ... on NewApiToken { token apiToken { id name createdAt lastUsedAt } }
    ... on Error { code message }
  }
}
"""

REVOKE_TOKEN = """
mutation ($id: ID!) {
  revokeApiToken(id: $id) {
    __typename
    ... on Deleted { id }
    ... on Error { code message }
  }
}
"""

API_TOKENS = "{ viewer { apiTokens { id name createdAt lastUsedAt } } }"

ADD_MEMBER = """
mutation ($input: AddMemberInput!) {
  addMember(input: $input) {
    __typename
    ... on Membership { role user { id email name } }
    ... on Error { code message }
    ... on ValidationError { field }
  }
}
"""

REMOVE_MEMBER = """
mutation ($org: ID!, $user: ID!) {
  removeMember(organizationId: $org, userId: $user) {
    __typename
    ... on Deleted { id }
    ... on Error { code message }
  }
}
"""

MEMBERS = '{ organization(slug: "acme") { members { role user { email name } } } }'


async def add_membership(session: AsyncSession, org: Organization, user: User, role: Role) -> None:
    session.add(Membership(organization_id=org.id, user_id=user.id, role=role))
    await session.commit()


async def rows(engine: AsyncEngine, table: str) -> list[dict[str, Any]]:
    """A table's rows as the database has them now (not through any session's cache)."""
    async with engine.connect() as connection:
        result = await connection.execute(sa.select(SQLModel.metadata.tables[table]))
        return [dict(row) for row in result.mappings().all()]


async def database_text(engine: AsyncEngine) -> str:
    """Every value of every table, as text: to check that a secret is stored nowhere."""
    parts: list[str] = []
    for table in SQLModel.metadata.sorted_tables:
        parts.extend(repr(row) for row in await rows(engine, table.name))
    return "\n".join(parts)


# ---- authentication -------------------------------------------------------------------------


def assert_unauthenticated(body: dict[str, Any]) -> None:
    assert body["status_code"] == 401, body
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "data" not in body


NOT_VALID = [
    None,
    "",
    "Bearer",
    "Bearer   ",
    "Basic YWRhOnNlY3JldA==",
    "Token prm_abc",
    "prm_not-even-a-scheme",
    "Bearer prm_" + "x" * 43,  # the shape of a token, but no such token
    "Bearer not-a-promenade-token",
]


async def test_requests_without_a_valid_token_are_refused(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    await api.token_for(ada)  # a valid token exists, just not in these requests
    for authorization in NOT_VALID:
        headers = {} if authorization is None else {"Authorization": authorization}
        response = await api.http.post("/graphql", json={"query": VIEWER}, headers=headers)
        body: dict[str, Any] = response.json()
        body["status_code"] = response.status_code
        assert_unauthenticated(body)
        assert response.headers["www-authenticate"] == "Bearer", authorization


async def test_an_unauthenticated_mutation_changes_nothing(
    api: GraphQLClient, engine: AsyncEngine
) -> None:
    body = await api.raw('mutation { createOrganization(slug: "x", name: "X") { __typename } }')
    assert_unauthenticated(body)
    assert await rows(engine, "organizations") == []


async def test_a_revoked_token_is_refused(api: GraphQLClient, session: AsyncSession) -> None:
    ada = await make_user(session, "ada@example.com")
    token, secret = await create_api_token(session, actor=ada, name="laptop")
    await session.commit()
    assert (await api.raw(VIEWER, token=secret))["status_code"] == 200
    await revoke_api_token(session, actor=ada, token_id=token.id)
    await session.commit()
    assert_unauthenticated(await api.raw(VIEWER, token=secret))


async def test_graphiql_is_served_without_a_token(api: GraphQLClient) -> None:
    response = await api.http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()


async def test_a_get_query_needs_a_token_too(api: GraphQLClient) -> None:
    response = await api.http.get("/graphql", params={"query": VIEWER})
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_production_mode_serves_no_graphiql(
    engine: AsyncEngine, secret_key: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=secret_key, production=True)
    transport = httpx.ASGITransport(app=create_app(settings, engine=engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://promenade.test") as http:
        response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert "graphiql" not in response.text.lower()


# ---- API tokens ----------------------------------------------------------------------------


async def test_a_new_token_is_shown_once_and_only_its_hash_is_stored(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    ada = await make_user(session, "ada@example.com")
    data = await api.execute(CREATE_TOKEN, {"name": "ci"}, as_user=ada)
    created = data["createApiToken"]
    assert created["__typename"] == "NewApiToken"
    secret = created["token"]
    assert secret.startswith("prm_") and len(secret) > 40
    assert created["apiToken"]["name"] == "ci"
    assert created["apiToken"]["lastUsedAt"] is None

    stored = [row for row in await rows(engine, "api_tokens") if row["name"] == "ci"]
    assert len(stored) == 1
    assert stored[0]["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in await database_text(engine)

    listing = await api.raw(API_TOKENS, as_user=ada)
    assert secret not in json.dumps(listing)
    tokens = listing["data"]["viewer"]["apiTokens"]
    assert created["apiToken"]["id"] in [t["id"] for t in tokens]
    assert all(set(t) == {"id", "name", "createdAt", "lastUsedAt"} for t in tokens)

    me = await api.raw(VIEWER, token=secret)
    assert me["status_code"] == 200
    assert me["data"]["viewer"]["user"]["email"] == "ada@example.com"


async def test_last_used_at_is_set_when_a_token_is_used(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    created = (await api.execute(CREATE_TOKEN, {"name": "ci"}, as_user=ada))["createApiToken"]

    def last_used(listing: dict[str, Any]) -> str | None:
        (token,) = [
            t for t in listing["viewer"]["apiTokens"] if t["id"] == created["apiToken"]["id"]
        ]
        value: str | None = token["lastUsedAt"]
        return value

    assert last_used(await api.execute(API_TOKENS, as_user=ada)) is None
    await api.raw(VIEWER, token=created["token"])
    used = last_used(await api.execute(API_TOKENS, as_user=ada))
    assert used is not None
    assert used >= created["apiToken"]["createdAt"]


async def test_revoking_ones_own_token_ends_it(api: GraphQLClient, session: AsyncSession) -> None:
    ada = await make_user(session, "ada@example.com")
    created = (await api.execute(CREATE_TOKEN, {"name": "ci"}, as_user=ada))["createApiToken"]
    token_id = created["apiToken"]["id"]
    # The token revokes itself.
    body = await api.raw(REVOKE_TOKEN, {"id": token_id}, token=created["token"])
    assert body["data"]["revokeApiToken"] == {"__typename": "Deleted", "id": token_id}
    assert_unauthenticated(await api.raw(VIEWER, token=created["token"]))
    tokens = (await api.execute(API_TOKENS, as_user=ada))["viewer"]["apiTokens"]
    assert token_id not in [t["id"] for t in tokens]


async def test_another_users_token_cannot_be_revoked(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    bob = await make_user(session, "bob@example.com")
    bobs = (await api.execute(CREATE_TOKEN, {"name": "bob's"}, as_user=bob))["createApiToken"]
    result = (await api.execute(REVOKE_TOKEN, {"id": bobs["apiToken"]["id"]}, as_user=ada))[
        "revokeApiToken"
    ]
    assert result["__typename"] == "NotFoundError"
    me = await api.raw(VIEWER, token=bobs["token"])
    assert me["status_code"] == 200
    assert me["data"]["viewer"]["user"]["email"] == "bob@example.com"


async def test_a_token_of_another_user_is_not_a_node(
    api: GraphQLClient, session: AsyncSession
) -> None:
    ada = await make_user(session, "ada@example.com")
    bob = await make_user(session, "bob@example.com")
    bobs = (await api.execute(CREATE_TOKEN, {"name": "bob's"}, as_user=bob))["createApiToken"]
    query = "query ($id: ID!) { node(id: $id) { id } }"
    variables = {"id": bobs["apiToken"]["id"]}
    assert (await api.execute(query, variables, as_user=bob))["node"] == {"id": variables["id"]}
    assert (await api.execute(query, variables, as_user=ada))["node"] is None


# ---- members -------------------------------------------------------------------------------


async def test_an_admin_adds_a_new_user_as_member(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    named = await api.execute(
        ADD_MEMBER,
        {
            "input": {
                "organizationId": org.id,
                "email": "Grace@Example.com",
                "name": "Grace Hopper",
                "role": "DEVELOPER",
            }
        },
        as_user=admin,
    )
    assert named["addMember"]["__typename"] == "Membership"
    assert named["addMember"]["role"] == "DEVELOPER"
    assert named["addMember"]["user"]["email"] == "grace@example.com"
    assert named["addMember"]["user"]["name"] == "Grace Hopper"

    unnamed = await api.execute(
        ADD_MEMBER,
        {"input": {"organizationId": org.id, "email": "linus@example.com", "role": "VIEWER"}},
        as_user=admin,
    )
    assert unnamed["addMember"]["user"]["name"] == "linus"

    users = {row["email"]: row for row in await rows(engine, "users")}
    assert users["grace@example.com"]["name"] == "Grace Hopper"
    assert users["linus@example.com"]["name"] == "linus"
    members = (await api.execute(MEMBERS, as_user=admin))["organization"]["members"]
    assert sorted((m["user"]["email"], m["role"]) for m in members) == [
        ("ada@example.com", "ADMIN"),
        ("grace@example.com", "DEVELOPER"),
        ("linus@example.com", "VIEWER"),
    ]


async def test_adding_an_existing_user_keeps_their_name(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    await make_user(session, "bob@example.com", "Bob Original")
    data = await api.execute(
        ADD_MEMBER,
        {
            "input": {
                "organizationId": org.id,
                "email": "bob@example.com",
                "name": "Someone Else",
                "role": "APPROVER",
            }
        },
        as_user=admin,
    )
    assert data["addMember"]["user"]["name"] == "Bob Original"
    assert len([r for r in await rows(engine, "users") if r["email"] == "bob@example.com"]) == 1


async def test_adding_an_existing_member_is_a_conflict(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    dev = await make_user(session, "dev@example.com")
    await add_membership(session, org, dev, Role.DEVELOPER)
    data = await api.execute(
        ADD_MEMBER,
        {"input": {"organizationId": org.id, "email": "dev@example.com", "role": "ADMIN"}},
        as_user=admin,
    )
    assert data["addMember"]["__typename"] == "ConflictError"
    memberships = [r for r in await rows(engine, "memberships") if r["user_id"] == dev.id]
    assert [r["role"] for r in memberships] == ["DEVELOPER"]


async def test_a_bad_email_is_a_validation_error(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    for email in ["not-an-email", "two@@example.com", "a b@example.com", " "]:
        data = await api.execute(
            ADD_MEMBER,
            {"input": {"organizationId": org.id, "email": email, "role": "VIEWER"}},
            as_user=admin,
        )
        assert data["addMember"]["__typename"] == "ValidationError", email
        assert data["addMember"]["field"] == "email"
    assert [r["email"] for r in await rows(engine, "users")] == ["ada@example.com"]


async def test_only_an_admin_adds_members(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    for role in (Role.DEVELOPER, Role.APPROVER, Role.VIEWER):
        member = await make_user(session, f"{role.value.lower()}@example.com")
        await add_membership(session, org, member, role)
        data = await api.execute(
            ADD_MEMBER,
            {"input": {"organizationId": org.id, "email": "new@example.com", "role": "ADMIN"}},
            as_user=member,
        )
        assert data["addMember"]["__typename"] == "ForbiddenError", role
    assert "new@example.com" not in [r["email"] for r in await rows(engine, "users")]


async def test_another_organizations_admin_cannot_add_members(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    outsider = await make_user(session, "eve@example.com")
    await make_organization(session, outsider, "evil")
    data = await api.execute(
        ADD_MEMBER,
        {"input": {"organizationId": org.id, "email": "eve@example.com", "role": "ADMIN"}},
        as_user=outsider,
    )
    assert data["addMember"]["__typename"] == "NotFoundError"
    assert org.id not in [
        r["organization_id"]
        for r in await rows(engine, "memberships")
        if r["user_id"] == outsider.id
    ]
    assert (await api.execute(MEMBERS, as_user=outsider))["organization"] is None


async def test_a_new_member_gets_a_token_from_promenade_bootstrap(
    api: GraphQLClient,
    session: AsyncSession,
    database_url: str,
    tmp_path: Path,
    promenade_command: Path,
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    await api.execute(
        ADD_MEMBER,
        {
            "input": {
                "organizationId": org.id,
                "email": "grace@example.com",
                "name": "Grace",
                "role": "DEVELOPER",
            }
        },
        as_user=admin,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMENADE_")}
    env["PROMENADE_DATA_DIR"] = str(tmp_path / "data")
    env["PROMENADE_DATABASE_URL"] = database_url
    process = await asyncio.create_subprocess_exec(
        str(promenade_command),
        "bootstrap",
        "--email",
        "grace@example.com",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, stderr.decode()
    token = stdout.decode().strip()
    assert token.startswith("prm_") and "\n" not in token

    body = await api.raw(VIEWER, token=token)
    assert body["status_code"] == 200, body
    viewer = body["data"]["viewer"]
    assert viewer["user"]["email"] == "grace@example.com"
    assert viewer["user"]["name"] == "Grace"
    # bootstrap without --org leaves the role the admin gave.
    assert viewer["memberships"] == [{"role": "DEVELOPER", "organization": {"slug": "acme"}}]


async def test_an_admin_removes_a_member(api: GraphQLClient, session: AsyncSession) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    dev = await make_user(session, "dev@example.com")
    await add_membership(session, org, dev, Role.DEVELOPER)
    assert (await api.execute(MEMBERS, as_user=dev))["organization"] is not None

    data = await api.execute(REMOVE_MEMBER, {"org": org.id, "user": dev.id}, as_user=admin)
    assert data["removeMember"] == {"__typename": "Deleted", "id": dev.id}
    members = (await api.execute(MEMBERS, as_user=admin))["organization"]["members"]
    assert [m["user"]["email"] for m in members] == ["ada@example.com"]
    assert (await api.execute(MEMBERS, as_user=dev))["organization"] is None
    assert (await api.execute(VIEWER, as_user=dev))["viewer"]["memberships"] == []


async def test_the_last_admin_cannot_be_removed(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    dev = await make_user(session, "dev@example.com")
    await add_membership(session, org, dev, Role.DEVELOPER)
    data = await api.execute(REMOVE_MEMBER, {"org": org.id, "user": admin.id}, as_user=admin)
    assert data["removeMember"]["__typename"] == "ConflictError"
    assert len(await rows(engine, "memberships")) == 2

    # With a second admin, the first may go.
    second = await make_user(session, "second@example.com")
    await add_membership(session, org, second, Role.ADMIN)
    data = await api.execute(REMOVE_MEMBER, {"org": org.id, "user": admin.id}, as_user=second)
    assert data["removeMember"]["__typename"] == "Deleted"
    data = await api.execute(REMOVE_MEMBER, {"org": org.id, "user": second.id}, as_user=second)
    assert data["removeMember"]["__typename"] == "ConflictError"


async def test_only_an_admin_removes_members(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine
) -> None:
    admin = await make_user(session, "ada@example.com")
    org = await make_organization(session, admin)
    for role in (Role.DEVELOPER, Role.APPROVER, Role.VIEWER):
        member = await make_user(session, f"{role.value.lower()}@example.com")
        await add_membership(session, org, member, role)
        data = await api.execute(REMOVE_MEMBER, {"org": org.id, "user": admin.id}, as_user=member)
        assert data["removeMember"]["__typename"] == "ForbiddenError", role
    assert len(await rows(engine, "memberships")) == 4


# ---- what a member of one organization sees of another ---------------------------------------

NODE = "query ($id: ID!) { node(id: $id) { __typename id } }"


async def test_a_member_of_one_organization_cannot_see_another(
    api: GraphQLClient, session: AsyncSession
) -> None:
    alice = await make_user(session, "alice@a.example")
    await make_organization(session, alice, "a")
    bert = await make_user(session, "bert@b.example")
    org_b = await make_organization(session, bert, "b")
    project = await create_project(session, actor=bert, organization_id=org_b.id, name="Billing")
    integration = await create_integration(session, actor=bert, project_id=project.id, name="API")
    build = await create_build(
        session, actor=bert, integration_id=integration.id, version="1.0", artifact="run"
    )
    await session.commit()
    deployment = (
        await session.exec(select(Deployment).where(Deployment.integration_id == integration.id))
    ).first()
    assert deployment is not None

    b_ids = (
        await api.execute(
            '{ organization(slug: "b") { id environments { id } dataPlanes { id } '
            "pipelines { id } } }",
            as_user=bert,
        )
    )["organization"]
    ids = {
        "Organization": b_ids["id"],
        "Environment": b_ids["environments"][0]["id"],
        "DataPlane": b_ids["dataPlanes"][0]["id"],
        "DeploymentPipeline": b_ids["pipelines"][0]["id"],
        "Project": project.id,
        "Integration": integration.id,
        "Build": build.id,
        "Deployment": deployment.id,
        "User": bert.id,
    }
    for typename, object_id in ids.items():
        # B's own member sees each one: the ids are right.
        seen = (await api.execute(NODE, {"id": object_id}, as_user=bert))["node"]
        assert seen == {"__typename": typename, "id": object_id}
        # A's member does not.
        assert (await api.execute(NODE, {"id": object_id}, as_user=alice))["node"] is None, typename

    direct = """
    query ($env: ID!, $project: ID!, $integration: ID!, $deployment: ID!) {
      organization(slug: "b") { id }
      environment(id: $env) { id }
      project(id: $project) { id }
      integration(id: $integration) { id }
      deployment(id: $deployment) { id }
    }
    """
    variables = {
        "env": ids["Environment"],
        "project": project.id,
        "integration": integration.id,
        "deployment": deployment.id,
    }
    assert all(v is not None for v in (await api.execute(direct, variables, as_user=bert)).values())
    assert all(v is None for v in (await api.execute(direct, variables, as_user=alice)).values())

    memberships = (await api.execute(VIEWER, as_user=alice))["viewer"]["memberships"]
    assert memberships == [{"role": "ADMIN", "organization": {"slug": "a"}}]
