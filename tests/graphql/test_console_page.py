"""The web console (app/console, built from console/), as the API serves it at ``/``: the page
and its two files, byte for byte what the page's integrity values say, under a policy that lets
it reach nothing but this server; in production mode too (it is a client of the API like any
other, and needs a token for everything it shows). And every operation the console sends
(console/src/api/documents.ts) is valid against the schema the API serves, so that a renamed
field fails here rather than in a person's browser. tests/console drives it in Chromium."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from graphql import parse, validate
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.console import CONTENT_SECURITY_POLICY, DIST, Console
from app.graphql.ide import integrity
from app.graphql.schema import schema
from tests.graphql.governance import Live, live_api
from tests.graphql.test_ide import Subresources

DOCUMENTS = Path(__file__).parents[2] / "console" / "src" / "api" / "documents.ts"


@pytest.fixture(params=[False, True], ids=["development", "production"])
async def served(
    request: pytest.FixtureRequest,
    engine: AsyncEngine,
    session: AsyncSession,
    secret_key: str,
    tmp_path: Path,
) -> AsyncIterator[Live]:
    async with live_api(engine, session, secret_key, tmp_path, production=request.param) as live:
        yield live


async def test_the_page_and_its_files_are_served_with_their_integrity(served: Live) -> None:
    http = served.api.http
    response = await http.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text, "an inline script, which the policy forbids"
    parser = Subresources()
    parser.feed(response.text)
    assert len(parser.found) == 2, parser.found  # the bundle's script and stylesheet
    for url, expected in parser.found.items():
        absolute = httpx.URL(f"{served.url}/").join(url)
        assert absolute.host == "127.0.0.1", url
        asset = await http.get(absolute)
        assert asset.status_code == 200, url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"].startswith(kind), url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert expected == integrity(asset.content), f"{url}: the browser would refuse it"


async def test_nothing_else_is_served_from_the_console(served: Live) -> None:
    http = served.api.http
    for name in ("index.html", "..%2f__init__.py", "%2e%2e%2findex.html", "nothing.js"):
        response = await http.get(f"/assets/{name}")
        assert response.status_code == 404, name
    assert (await http.post("/")).status_code == 405


def test_an_unbuilt_console_says_how_to_build_it(tmp_path: Path) -> None:
    console = Console(tmp_path)
    assert console.page is None and console.assets == {}


def test_the_build_is_in_the_package() -> None:
    assert (DIST / "index.html").is_file()
    assert {path.suffix for path in (DIST / "assets").iterdir()} == {".js", ".css"}


def console_documents() -> dict[str, str]:
    """documents.ts's operations, with the fragments they interpolate (``${NAME}``)."""
    source = DOCUMENTS.read_text(encoding="utf-8")
    constants = dict(re.findall(r"(?:export )?const (\w+) = `(.*?)`;", source, flags=re.S))
    assert constants, "no documents found"

    def resolved(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda match: resolved(constants[match.group(1)]), text)

    return {
        name: resolved(text)
        for name, text in constants.items()
        if re.search(r"^\s*(query|mutation|subscription) ", text)
    }


@pytest.mark.parametrize("name", sorted(console_documents()))
def test_the_consoles_operations_are_valid_against_the_schema(name: str) -> None:
    document = parse(console_documents()[name])
    errors = validate(schema._schema, document)
    assert not errors, [error.message for error in errors]
