"""The web console, served by the API at ``/``: the page (``dist/index.html``) and its hashed
script and stylesheet (``/assets/<name>``), built from ``console/`` (a Preact and TypeScript
app) by ``npm run build`` and committed, so that serving it needs nothing but Python.

The console is a client of the API like any other: it holds an API token in the tab's
sessionStorage and sends it as a bearer token to ``/graphql`` (HTTP and websocket). The page's
Content-Security-Policy lets it load and reach nothing but this server, and its script and
stylesheet carry integrity values computed from the files served, so that the token the page
holds is not for other origins' scripts.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from app.graphql.ide import integrity

DIST = Path(__file__).with_name("dist")

# Only this server's files, no inline script or style; requests to this server only (the API
# over HTTP and websockets); no frames of it elsewhere, no forms posted elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The page holds a token once entered: no shared cache keeps it, no referrer leaves it.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

# The build's references to its assets: <script ... src="./assets/x.js"> and <link href=...>.
_ASSET_REFERENCE = re.compile(r'(src|href)="\./assets/([\w.-]+)"')


class Console:
    """The built console, read once: the page with integrity values, and its assets."""

    def __init__(self, dist: Path = DIST) -> None:
        assets = dist / "assets"
        self.assets: dict[str, bytes] = (
            {
                path.name: path.read_bytes()
                for path in assets.iterdir()
                if path.is_file() and path.suffix in _MEDIA_TYPES
            }
            if assets.is_dir()
            else {}
        )
        index = dist / "index.html"
        self.page: str | None = (
            _with_integrity(index.read_text(encoding="utf-8"), self.assets)
            if index.is_file()
            else None
        )

    async def index(self, _: Request) -> Response:
        if self.page is None:
            return PlainTextResponse(
                "The console is not built: run `npm ci && npm run build` in console/.\n",
                status_code=503,
            )
        return HTMLResponse(self.page, headers=_PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        content = self.assets.get(name)
        if content is None:
            return PlainTextResponse("not found\n", status_code=404)
        return Response(
            content,
            media_type=_MEDIA_TYPES[Path(name).suffix],
            headers={
                "X-Content-Type-Options": "nosniff",
                # The names carry a hash of the content: a new build has new names.
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET", "HEAD"], name="console"),
            Route("/assets/{name}", self.asset, methods=["GET", "HEAD"], name="console-asset"),
        ]


def _with_integrity(page: str, assets: dict[str, bytes]) -> str:
    def pin(match: re.Match[str]) -> str:
        attribute, name = match.groups()
        content = assets.get(name)
        if content is None:
            return match.group(0)
        return f'{attribute}="./assets/{name}" integrity="{integrity(content)}"'

    return _ASSET_REFERENCE.sub(pin, page)
