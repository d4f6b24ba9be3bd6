"""GraphiQL for a person (app/graphql/ide.py), through uvicorn serving the app: the page and
every file it loads come from the server itself, byte for byte what the page's integrity
values say (else a browser runs none of it); the token the page puts in GraphiQL's headers
editor, ``{"Authorization": "Bearer <token>"}``, authenticates what GraphiQL sends with it:
queries over HTTP, the schema's introspection, and subscriptions, whose connection_init gets
the same headers. In production mode there is neither the page nor its files.
scripts/screenshot-graphiql drives the page in a real browser."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from graphql import get_introspection_query
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.graphql.ide import CONTENT_SECURITY_POLICY, integrity
from tests.graphql.governance import Live, live_api
from tests.support.graphql_ws import raw_connection
from tests.support.organizations import make_user

# What GraphiQL 3 sends for a query (its multipart-capable fetcher), beside the editor's headers.
GRAPHIQL_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, multipart/mixed",
}


class Subresources(HTMLParser):
    """The scripts and stylesheets a page loads, with their integrity values."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else None
        if tag == "link" and values.get("rel") == "stylesheet":
            url = values.get("href")
        if url is not None:
            self.found[url] = values.get("integrity")


@pytest.fixture
async def served(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[tuple[Live, str]]:
    async with live_api(engine, session, secret_key, tmp_path) as live:
        ada = await make_user(session, "ada@example.com")
        yield live, await live.api.token_for(ada)


async def page(http: httpx.AsyncClient) -> httpx.Response:
    # What a browser sends when it opens /graphql.
    return await http.get("/graphql", headers={"Accept": "text/html,application/xhtml+xml,*/*"})


async def test_the_page_and_everything_it_loads_are_served_by_the_api(
    served: tuple[Live, str],
) -> None:
    live, _ = served
    http = live.api.http
    response = await page(http)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    parser = Subresources()
    parser.feed(response.text)
    assert len(parser.found) == 6, parser.found  # React, ReactDOM, GraphiQL (2), Promenade's (2)
    for url, expected in parser.found.items():
        # Relative to the page: from this server, which the policy's 'self' allows.
        absolute = httpx.URL(f"{live.url}/graphql").join(url)
        assert absolute.host == "127.0.0.1", url
        asset = await http.get(absolute)
        assert asset.status_code == 200, url
        kind = "text/css" if url.endswith(".css") else "javascript"
        assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert expected == integrity(asset.content), f"{url}: the browser would refuse it"


async def test_the_page_keeps_the_token_for_the_tab_and_puts_it_in_the_headers(
    served: tuple[Live, str],
) -> None:
    live, _ = served
    script = (await live.api.http.get("/graphiql/promenade-graphiql.js")).text
    assert "sessionStorage.setItem" in script and "localStorage." not in script
    assert "Authorization: 'Bearer ' + token" in script
    assert "shouldPersistHeaders: false" in script  # GraphiQL would keep them in localStorage
    # Its tabs and history hold the headers too: in the tab's storage, not localStorage.
    assert "storage: sessionStorage" in script


async def test_only_the_files_the_page_loads_are_served(served: tuple[Live, str]) -> None:
    live, _ = served
    for name in ("page.html", "LICENSE.react", "LICENSE.graphiql", "..%2fide.py", "nothing.js"):
        response = await live.api.http.get(f"/graphiql/{name}")
        assert response.status_code == 404, name
    served_file = await live.api.http.get("/graphiql/graphiql.min.js")
    assert served_file.headers["x-content-type-options"] == "nosniff"


async def test_what_graphiql_sends_with_the_token_is_answered(served: tuple[Live, str]) -> None:
    live, token = served
    http = live.api.http
    headers = {**GRAPHIQL_HEADERS, "Authorization": f"Bearer {token}"}
    query = await http.post(
        "/graphql", json={"query": "{ viewer { user { email } } }"}, headers=headers
    )
    assert query.json() == {"data": {"viewer": {"user": {"email": "ada@example.com"}}}}
    # The documentation explorer's schema, which GraphiQL reads first.
    schema = await http.post(
        "/graphql",
        json={"query": get_introspection_query(), "operationName": "IntrospectionQuery"},
        headers=headers,
    )
    assert schema.status_code == 200
    assert schema.json()["data"]["__schema"]["queryType"]["name"] == "Query"
    # Without the token (the form not filled in), GraphiQL shows the refusal.
    anonymous = await http.post(
        "/graphql", json={"query": "{ viewer { user { email } } }"}, headers=GRAPHIQL_HEADERS
    )
    assert anonymous.status_code == 401


async def test_graphiqls_subscriptions_authenticate_with_the_headers_editors_token(
    served: tuple[Live, str],
) -> None:
    """GraphiQL's websocket client sends the editor's headers as connection_init's payload:
    ``{"Authorization": "Bearer <token>"}``, capitalised as a header is."""
    live, token = served
    async with raw_connection(live.url) as connection:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        await connection.send(json.dumps(init))
        assert json.loads(await asyncio.wait_for(connection.recv(), 10)) == {
            "type": "connection_ack"
        }
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": "{ viewer { user { email } } }"},
        }
        await connection.send(json.dumps(subscribe))
        answer = json.loads(await asyncio.wait_for(connection.recv(), 10))
        assert answer["payload"] == {"data": {"viewer": {"user": {"email": "ada@example.com"}}}}
    async with raw_connection(live.url) as refused:
        init = {"type": "connection_init", "payload": {"Authorization": "Bearer not-a-token"}}
        await refused.send(json.dumps(init))
        with pytest.raises(Exception) as closed:
            await asyncio.wait_for(refused.recv(), 10)
        assert getattr(closed.value, "rcvd", None) is not None
        assert closed.value.rcvd.code == 4403  # type: ignore[attr-defined]


async def test_production_mode_serves_neither_the_page_nor_its_files(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> None:
    async with live_api(engine, session, secret_key, tmp_path, production=True) as live:
        response = await page(live.api.http)
        assert response.status_code == 401
        assert "graphiql" not in response.text.lower()
        for name in ("graphiql.min.js", "promenade-graphiql.js"):
            assert (await live.api.http.get(f"/graphiql/{name}")).status_code == 404
