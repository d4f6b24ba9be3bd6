"""Serving ASGI apps with uvicorn inside a process that runs more than one thing (the API, a
gateway, a worker), and shutting them all down in order on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from app.log_lines import JsonLines
from app.settings import SettingsError


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with access lines on stderr too: stdout carries only what scripts
    read (the token that ``promenade up`` prints). When the process logs JSON lines
    (app/processes/startup.py ``configure_logging``), uvicorn's loggers hand their records to
    that handler instead: its error and access lines are JSON lines too, on the same stream."""
    if any(isinstance(h.formatter, JsonLines) for h in logging.getLogger().handlers):
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "loggers": {
                name: {"handlers": [], "level": "INFO", "propagate": True}
                for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
            },
        }
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config


class _Server(uvicorn.Server):
    """uvicorn takes SIGTERM for itself and re-raises it once it stopped, which would end the
    process before the other parts have drained: here the process owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class BackgroundServer:
    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str,
        port: int,
        setting: str,
        access_log: bool = True,
        ws_max_size: int = 1 << 20,
    ) -> None:
        """``ws_max_size``: the largest websocket message uvicorn takes (a larger one closes the
        socket with 1009), the counterpart of the HTTP body limit."""
        self._setting = setting
        self._server = _Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                lifespan="on",
                log_config=log_config(),
                access_log=access_log,
                ws_max_size=ws_max_size,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve, or raise SettingsError (naming the setting) if the port cannot be had."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                # uvicorn logged why (address in use, say) and ended its task.
                with contextlib.suppress(BaseException):
                    self._task.result()
                config = self._server.config
                raise SettingsError(
                    f"{self._setting}: cannot listen on "
                    f"{config.host}:{config.port} (is something else there?)"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


def freeze_startup_heap() -> None:
    """Takes what start-up built (modules, the schema, the app, the connections) out of the
    garbage collector's reach: it lives as long as the process, and a full collection no
    longer walks it again each time (with many subscribers, such pauses held every event
    back by up to a second)."""
    gc.collect()
    gc.freeze()
