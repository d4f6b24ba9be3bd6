"""A worker: it consumes its data plane's commands, runs the step machine, and publishes what
the step machine recorded (through the outbox relay). SIGTERM drains it: no new command is
taken, the running ones finish, then it exits."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from app.crypto import SecretBox
from app.db import SessionFactory
from app.messaging.bus import Bus, Consumer
from app.serving import BackgroundServer
from app.settings import Settings
from workers.announcements import announce_unfinished_changes
from workers.gateway import create_gateway_app
from workers.runtimes.base import Runtime
from workers.runtimes.local_process import LocalProcessRuntime
from workers.steps import StepMachine
from workers.supervisor import Supervisor

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
    health_timeout_s: float = 30.0
    # Wakes the process's outbox relay after the step machine commits.
    after_commit: Callable[[], None] = lambda: None
    # Embedded mode stops the integrations with the process; a scaled worker leaves them
    # running, so that a worker restart does not interrupt their traffic.
    stop_instances_on_drain: bool = False
    _consumers: list[Consumer] = field(default_factory=list)
    _supervisor: Supervisor | None = None
    _machine: StepMachine | None = None
    _supervision: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._machine = machine = StepMachine(
            sessions=self.sessions,
            box=self.box,
            runtime=self.runtime,
            owner=self.name,
            pause_after_step=self.pause_after_step,
            after_commit=self.after_commit,
            health_timeout_s=self.health_timeout_s,
        )
        self._consumers = [
            await self.bus.consume_commands(
                self.data_plane, machine.handle_command, concurrency=self.concurrency
            ),
            await self.bus.consume_dead_letters(self.data_plane, machine.handle_dead_letter),
        ]
        self._supervisor = Supervisor(
            sessions=self.sessions,
            box=self.box,
            runtime=self.runtime,
            data_plane=self.data_plane,
            owner=self.name,
            bus=self.bus,
            health_timeout_s=self.health_timeout_s,
        )
        self._supervision = asyncio.create_task(self._supervisor.run())
        # Embedded mode keeps commands in memory, so a crash loses them: announce again what
        # has not ended (on RabbitMQ the copy is redundant, and harmless).
        await announce_unfinished_changes(
            self.sessions, self.bus, self.data_plane, sender=f"restart-{self.name}"
        )
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
        if self._machine is not None:
            await self._machine.close()
        if self._supervisor is not None and self._supervision is not None:
            self._supervisor.stop()
            await self._supervision
            if self.stop_instances_on_drain:
                await self._supervisor.stop_all()


class Gateway(BackgroundServer):
    """The LOCAL_PROCESS data plane's HTTP gateway, served in this process."""

    def __init__(self, settings: Settings) -> None:
        settings.runtime_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            create_gateway_app(settings.runtime_dir / "routes.json"),
            host=settings.gateway_host,
            port=settings.gateway_port,
            setting="PROMENADE_GATEWAY_PORT",
            access_log=False,
        )
