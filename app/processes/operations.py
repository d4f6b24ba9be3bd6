"""What an operator asks a worker: ``/healthz`` (the process answers), ``/readyz`` (the database
answers at the migrations' head, the broker answers, and it consumes its data planes' queues),
``/metrics``; served on ``PROMENADE_WORKER_HOST``:``PROMENADE_WORKER_PORT`` when that is set."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.messaging.bus import Bus
from app.metrics import Refresher, metrics_endpoint
from app.readiness import Check, Part, Readiness, broker_check, database_checks


def operations_app(
    engine: AsyncEngine,
    bus: Bus,
    *,
    consuming: Callable[[], bool],
    refreshers: Sequence[Refresher] = (),
    metrics_token: str | None = None,
) -> Starlette:
    """``consuming``: whether the worker serves its data planes yet (it waits for the broker
    at start)."""

    async def consumes() -> Part:
        if consuming():
            return Part("consumers", True)
        return Part("consumers", False, "not consuming its data planes' queues yet")

    checks: list[Check] = [*database_checks(engine), broker_check(bus), consumes]
    readiness = Readiness(checks)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        return await readiness.response()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint(refreshers, token=metrics_token)),
        ]
    )
