"""GraphiQL for a person with a token, served by the API itself when PROMENADE_PRODUCTION is
off: the page at ``/graphql`` (for a browser's GET), its scripts and styles at ``/graphiql/``.

Everything it loads comes from this server, so it works where the machine reaches no CDN, and
the page's Content-Security-Policy lets it load nothing else: the token the page keeps (in the
tab's sessionStorage) is not for other origins' scripts. GraphiQL 3.8.3 and React 18.2.0 are
the files their npm packages ship; the integrity values below are those packages' (the same as
Strawberry's own GraphiQL page pins), so a file changed by mistake is refused by the browser
and fails the tests.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

ASSETS = Path(__file__).with_name("ide_assets")

# Where the page finds its files: relative to /graphql, so also behind a proxy's path prefix.
ASSETS_PATH = "/graphiql"

# The vendored files, with the sha384 of graphiql@3.8.3, react@18.2.0 and react-dom@18.2.0.
VENDORED = {
    "react.production.min.js": (
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8"
    ),
    "react-dom.production.min.js": (
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"
    ),
    "graphiql.min.js": "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    "graphiql.min.css": "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
}

# Promenade's own: the token form and how GraphiQL is started with the token.
OWN = ("promenade-graphiql.js", "promenade-graphiql.css")

# Only this server's files; inline styles, which GraphiQL's editors set; the fonts its
# stylesheet embeds as data: URLs; requests to this server only (the API over HTTP and
# websockets); no frames of it elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "font-src data:; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def integrity(content: bytes) -> str:
    """A subresource integrity value (sha384) of ``content``."""
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


def _page() -> str:
    page = (ASSETS / "page.html").read_text(encoding="utf-8")
    values = dict(VENDORED)
    values.update({name: integrity((ASSETS / name).read_bytes()) for name in OWN})
    for name, value in values.items():
        page = page.replace("{" + name + "}", value)
    return page


class GraphiQLPage:
    """The page, read once."""

    def __init__(self) -> None:
        self._html = _page()

    def response(self) -> Response:
        return HTMLResponse(
            self._html,
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                # The page holds a token once entered: no shared cache keeps it, no other
                # site frames it, no referrer leaves it.
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )


# What the page loads, and the only files served: not the page's template, not the licences.
SERVED = {*VENDORED, *OWN}
_MEDIA_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


async def _asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in SERVED:
        return Response("not found\n", status_code=404, media_type="text/plain")
    return Response(
        (ASSETS / name).read_bytes(),
        media_type=_MEDIA_TYPES[Path(name).suffix],
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


def ide_routes(*, enabled: bool) -> list[BaseRoute]:
    """The route of the page's files; none when GraphiQL is off (production)."""
    if not enabled:
        return []
    return [Route(ASSETS_PATH + "/{name}", _asset, name="graphiql")]
