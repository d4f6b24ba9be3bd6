from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.support.graphql_client import GraphQLClient
from tests.support.organizations import make_organization, make_user


async def test_new_organization_has_development_and_production(
    api: GraphQLClient, session: AsyncSession
) -> None:
    admin = await make_user(session, "ada@example.com")
    await make_organization(session, admin)
    data = await api.execute(
        '{ organization(slug: "acme") { environments { name critical } '
        "pipelines { isDefault environments { name } } } }",
        as_user=admin,
    )
    org = data["organization"]
    assert [(e["name"], e["critical"]) for e in org["environments"]] == [
        ("Development", False),
        ("Production", True),
    ]
    assert org["pipelines"] == [
        {"isDefault": True, "environments": [{"name": "Development"}, {"name": "Production"}]}
    ]
