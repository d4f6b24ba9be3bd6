"""GraphQL over HTTP as its specification has it, through uvicorn serving the app: the answer in
the media type the client accepts (application/graphql-response+json: 4xx without ``data``
for a request that did not run; application/json: 200 with the errors, as for every client
before), queries with GET and never mutations (405, ``Allow: POST``), a GET's parameters held
to what a POST's body is. tests/live/test_graphql_http_audit.py runs the specification's own
audit against ``promenade up``; this says what clients rely on, case by case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.graphql.schema import MAX_QUERY_DEPTH
from tests.graphql.governance import Live, live_api
from tests.graphql.test_api_limits import deep_mutation
from tests.support.organizations import make_organization, make_user

GRAPHQL_RESPONSE = "application/graphql-response+json"
TOKENS = "{ viewer { apiTokens { name } } }"


@dataclass
class Served:
    live: Live
    token: str

    async def post(self, body: dict[str, Any], accept: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if accept is not None:
            headers["Accept"] = accept
        return await self.live.api.http.post("/graphql", json=body, headers=headers)

    async def get(self, params: dict[str, str], accept: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if accept is not None:
            headers["Accept"] = accept
        return await self.live.api.http.get("/graphql", params=params, headers=headers)

    async def token_names(self) -> list[str]:
        response = await self.post({"query": TOKENS})
        return [token["name"] for token in response.json()["data"]["viewer"]["apiTokens"]]


@pytest.fixture
async def served(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[Served]:
    async with live_api(engine, session, secret_key, tmp_path) as live:
        ada = await make_user(session, "ada@example.com")
        await make_organization(session, ada, "acme")
        yield Served(live, await live.api.token_for(ada))


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


@pytest.mark.parametrize(
    ("accept", "answered_as"),
    [
        (None, "application/json"),
        ("application/json", "application/json"),
        ("*/*", "application/json"),
        ("text/html", "application/json"),  # accepts neither: the default
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        # What Apollo Client and the specification's examples send.
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", "application/json"),
        (f"{GRAPHQL_RESPONSE};q=0, application/json", "application/json"),
    ],
)
async def test_the_answer_is_sent_as_the_media_type_the_client_accepts(
    served: Served, accept: str | None, answered_as: str
) -> None:
    response = await served.post({"query": "{ viewer { user { email } } }"}, accept)
    assert response.status_code == 200
    assert media_type(response) == answered_as
    assert response.json() == {"data": {"viewer": {"user": {"email": "ada@example.com"}}}}


NOT_RUN = {
    "a document that does not parse": {"query": "{ viewer {"},
    "a document that does not validate": {"query": "{ viewer { nope } }"},
    "a variable that cannot be coerced": {
        "query": "query($id: ID!) { node(id: $id) { id } }",
        "variables": {"id": None},
    },
    "a document over the depth limit": {"query": deep_mutation("too-deep", MAX_QUERY_DEPTH + 1)},
}


@pytest.mark.parametrize("body", NOT_RUN.values(), ids=NOT_RUN.keys())
async def test_a_request_that_did_not_run_is_a_400_without_data_in_graphql_response_json(
    served: Served, body: dict[str, Any]
) -> None:
    response = await served.post(body, GRAPHQL_RESPONSE)
    assert response.status_code == 400, response.text
    assert media_type(response) == GRAPHQL_RESPONSE
    answer = response.json()
    assert "data" not in answer, answer
    assert answer["errors"] and all("path" not in error for error in answer["errors"])


@pytest.mark.parametrize("body", NOT_RUN.values(), ids=NOT_RUN.keys())
async def test_application_json_still_answers_200_with_the_errors(
    served: Served, body: dict[str, Any]
) -> None:
    """The legacy answer, which clients written before the specification read."""
    response = await served.post(body, "application/json")
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    answer = response.json()
    assert answer["data"] is None and answer["errors"], answer


async def test_a_partial_answer_is_a_200_with_its_data_in_both_media_types(
    served: Served,
) -> None:
    """A field that fails (a page over the limit) nulls its part of the answer: the operation
    ran, so the status is 200 whatever the client accepts, with data and the field's error."""
    query = '{ viewer { user { email } } organization(slug: "acme") { projects(first: 1000) { totalCount } } }'  # noqa: E501
    for accept in (GRAPHQL_RESPONSE, "application/json"):
        response = await served.post({"query": query}, accept)
        assert response.status_code == 200, (accept, response.text)
        answer = response.json()
        assert answer["data"] == {
            "viewer": {"user": {"email": "ada@example.com"}},
            "organization": None,
        }
        assert answer["errors"][0]["path"] == ["organization", "projects"]


async def test_refusals_and_401_are_sent_as_the_accepted_media_type(served: Served) -> None:
    """The answers given before GraphQL runs (a malformed body, no token) keep their status
    and say so in the type the client reads."""
    http = served.live.api.http
    for accept, expected in ((GRAPHQL_RESPONSE, GRAPHQL_RESPONSE), (None, "application/json")):
        headers = {"Accept": accept} if accept else {}
        malformed = await http.post(
            "/graphql",
            content=b"{not json",
            headers={
                "Authorization": f"Bearer {served.token}",
                "Content-Type": "application/json",
                **headers,
            },
        )
        assert malformed.status_code == 400
        assert media_type(malformed) == expected
        assert "not JSON" in malformed.json()["errors"][0]["message"]
        anonymous = await http.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
        assert anonymous.status_code == 401
        assert media_type(anonymous) == expected
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# ---- GET -----------------------------------------------------------------------------------


async def test_a_query_may_be_sent_with_get(served: Served) -> None:
    response = await served.get(
        {
            "query": "query($slug: String!) { organization(slug: $slug) { name } }",
            "variables": json.dumps({"slug": "acme"}),
        }
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"organization": {"name": "Acme"}}}
    # graphql-response+json's rules hold for a GET too.
    refused = await served.get({"query": "{ viewer { nope } }"}, GRAPHQL_RESPONSE)
    assert refused.status_code == 400 and "data" not in refused.json()


@pytest.mark.parametrize("accept", [None, GRAPHQL_RESPONSE])
async def test_a_mutation_sent_with_get_is_a_405_and_changes_nothing(
    served: Served, accept: str | None
) -> None:
    before = await served.token_names()
    response = await served.get(
        {"query": 'mutation { createApiToken(name: "by-get") { __typename } }'}, accept
    )
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert "POST" in response.json()["errors"][0]["message"]
    assert await served.token_names() == before
    # The same mutation with POST runs.
    posted = await served.post(
        {"query": 'mutation { createApiToken(name: "by-post") { __typename } }'}
    )
    assert posted.status_code == 200
    assert await served.token_names() == [*before, "by-post"]


async def test_a_get_is_held_to_what_a_post_is(served: Served) -> None:
    """The checks of a POST's body apply to a GET's parameters: malformed ones are a 400 that
    says which, and a subscription is served over a websocket only."""
    cases: list[tuple[dict[str, str], str]] = [
        ({"query": "{ __typename }", "variables": "{not json"}, "variables parameter is not JSON"),
        ({"query": "{ __typename }", "variables": "[1]"}, "variables must be a JSON object"),
        ({"query": "{ __typename }", "extensions": "nope"}, "extensions parameter is not JSON"),
        ({"variables": "{}"}, "query must be a string"),
        ({"query": '{ node(id: "\x00") { id } }'}, "NUL"),
        ({"query": '{ node(id: "\\u0000") { id } }'}, "NUL"),
        (
            {"query": "{ __typename }", "variables": "[" * 3_000},
            "variables parameter is not JSON",
        ),
        (
            {"query": "subscription { deploymentEvents { status } }"},
            "subscribe over a websocket",
        ),
    ]
    for params, says in cases:
        response = await served.get(params, "application/json")
        assert response.status_code == 400, (params, response.text)
        (error,) = response.json()["errors"]
        assert says in error["message"], (params, error)
