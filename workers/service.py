"""A worker: it consumes its data plane's commands, runs the step machine, and publishes what
the step machine recorded (through the outbox relay). SIGTERM drains it: no new command is
taken, the running ones finish, then it exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from dataclasses import dataclass, field

import uvicorn

from app.crypto import SecretBox
from app.db import SessionFactory
from app.messaging.bus import Bus, Consumer
from app.settings import Settings, SettingsError
from workers.gateway import create_gateway_app
from workers.runtimes.base import Runtime
from workers.runtimes.local_process import LocalProcessRuntime
from workers.steps import StepMachine

log = logging.getLogger(__name__)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def local_runtime(settings: Settings) -> LocalProcessRuntime:
    return LocalProcessRuntime(settings.runtime_dir, gateway_url=settings.resolved_gateway_url)


@dataclass
class Worker:
    """The consumers of one data plane's queue; many can run, in one process or many."""

    sessions: SessionFactory
    box: SecretBox
    bus: Bus
    runtime: Runtime
    data_plane: str
    concurrency: int = 4
    name: str = field(default_factory=worker_name)
    pause_after_step: str | None = None
    _consumers: list[Consumer] = field(default_factory=list)

    async def start(self) -> None:
        machine = StepMachine(
            sessions=self.sessions,
            box=self.box,
            runtime=self.runtime,
            owner=self.name,
            pause_after_step=self.pause_after_step,
        )
        self._consumers = [
            await self.bus.consume_commands(
                self.data_plane, machine.handle_command, concurrency=self.concurrency
            ),
            await self.bus.consume_dead_letters(self.data_plane, machine.handle_dead_letter),
        ]
        log.info(
            "worker %s serves data plane %r with concurrency %d",
            self.name,
            self.data_plane,
            self.concurrency,
        )

    async def drain(self) -> None:
        """Take no new command; wait for the running ones."""
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers = []


class Gateway:
    """The LOCAL_PROCESS data plane's HTTP gateway, served by uvicorn in this process."""

    def __init__(self, settings: Settings) -> None:
        settings.runtime_dir.mkdir(parents=True, exist_ok=True)
        config = uvicorn.Config(
            create_gateway_app(settings.runtime_dir / "routes.json"),
            host=settings.gateway_host,
            port=settings.gateway_port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve, or raise SettingsError if the port cannot be had."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                # uvicorn logs the reason and exits its task (address in use, say).
                with contextlib.suppress(BaseException):
                    self._task.result()
                config = self._server.config
                raise SettingsError(
                    f"PROMENADE_GATEWAY_PORT: the gateway cannot listen on "
                    f"{config.host}:{config.port} (is another gateway running there?)"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop
