"""``promenade gateway``: the LOCAL_PROCESS gateway alone, until SIGTERM or SIGINT (``promenade
worker`` serves it too, unless ``--no-gateway``)."""

from __future__ import annotations

import argparse
import sys

from app.processes.startup import configure_logging
from app.serving import stop_on_signals
from app.settings import Settings


async def run_gateway(settings: Settings, _: argparse.Namespace) -> None:
    configure_logging()
    from workers.service import Gateway

    stop = stop_on_signals()
    gateway = Gateway(settings)
    await gateway.start()
    print(f"Gateway at {settings.resolved_gateway_url}", file=sys.stderr)
    try:
        await stop.wait()
    finally:
        await gateway.stop()
