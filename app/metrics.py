"""``/metrics`` in the Prometheus text format (prometheus-client), for the API and the workers.

Each process exposes its own (the default registry of prometheus-client, so that what the API
and an embedded worker measure in one process is one scrape); several API replicas are scraped
one by one. Values that are counts of rows (promotions by status, the outbox's backlog) are read
when scraped, by the refreshers the process registers; label values are bounded sets (statuses,
operation types, data plane names), never IDs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import Response

log = logging.getLogger(__name__)

# Reads what a scrape reports from elsewhere (the database, the broker) into its gauges.
Refresher = Callable[[], Awaitable[None]]
Endpoint = Callable[[Request], Awaitable[Response]]


def metrics_endpoint(refreshers: Sequence[Refresher] = (), *, token: str | None = None) -> Endpoint:
    """The ``/metrics`` route: refresh, then the registry as text. A refresher that fails is
    logged and its gauges keep their last values: a scrape still answers.

    With ``token`` (``PROMENADE_METRICS_TOKEN``), a scrape must send it as a bearer token (401
    otherwise): the counts are the installation's, across organizations. Scrapes that arrive
    while a refresh runs wait for that one rather than starting their own, so a flood of
    scrapes costs the database one refresh at a time."""
    expected = f"Bearer {token}".encode() if token else None
    running: asyncio.Task[None] | None = None

    async def refresh_all() -> None:
        for refresh in refreshers:
            try:
                await refresh()
            except Exception:
                log.warning("a metrics refresher failed", exc_info=True)

    async def metrics(request: Request) -> Response:
        nonlocal running
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return Response(
                    "a bearer token is required\n",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if running is None or running.done():
            running = asyncio.ensure_future(refresh_all())
        await asyncio.shield(running)
        # The text format the scraper asks for (OpenMetrics, or Prometheus' own).
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(REGISTRY), headers={"Content-Type": content_type})

    return metrics
