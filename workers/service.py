"""A worker: for each data plane it serves, it consumes the plane's commands, runs the step
machine, supervises the plane's instances and answers requests for their logs; what the step
machine records is published through the outbox relay. SIGTERM drains it: no new command is
taken, the running ones finish, then it exits.

A worker serves explicit data planes (``promenade worker --data-plane ...``); embedded mode
(``promenade up``) also finds the CONTAINER data planes of the installation as they are
created (``discover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from app.crypto import SecretBox
from app.db import SessionFactory
from app.messaging.bus import Bus, Consumer
from app.services.dataplanes import LocalAdmission, ServedDataPlane
from app.serving import BackgroundServer
from app.settings import Settings
from workers.announcements import announce_unfinished_changes
from workers.gateway import create_gateway_app
from workers.logs import LogReader
from workers.metrics import report_data_plane
from workers.planes import CannotServe, RuntimeFor
from workers.runtimes.base import Runtime
from workers.steps import StepMachine
from workers.supervisor import Supervisor

log = logging.getLogger(__name__)

DISCOVERY_INTERVAL_S = 5.0

# Finds the data planes to serve besides the given ones.
Discovery = Callable[[], Awaitable[list[ServedDataPlane]]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class _Serving:
    """What the worker runs for one data plane."""

    plane: ServedDataPlane
    runtime: Runtime
    machine: StepMachine
    supervisor: Supervisor
    consumers: list[Consumer]
    supervision: asyncio.Task[None]


@dataclass
class Worker:
    """The consumers of the data planes' queues; many can run, in one process or many."""

    sessions: SessionFactory
    box: SecretBox
    bus: Bus
    # The runtime of each data plane served (``Runtimes.runtime_for``, or one fixed runtime).
    runtime_for: RuntimeFor
    planes: list[ServedDataPlane]
    concurrency: int = 4
    name: str = field(default_factory=worker_name)
    pause_after_step: str | None = None
    health_timeout_s: float = 30.0
    # Wakes the process's outbox relay after the step machine commits.
    after_commit: Callable[[], None] = lambda: None
    # Embedded mode stops the integrations with the process; a scaled worker leaves them
    # running, so that a worker restart does not interrupt their traffic.
    stop_instances_on_drain: bool = False
    admission: LocalAdmission = field(default_factory=LocalAdmission)
    # More data planes to serve as they appear (embedded mode), looked for every few seconds.
    discover: Discovery | None = None
    _serving: dict[str, _Serving] = field(default_factory=dict)
    _discovery: asyncio.Task[None] | None = None
    _look_now: asyncio.Event = field(default_factory=asyncio.Event)
    # Data planes found but not served, with the reason (said once, in the log).
    unserved: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        """Serve every data plane given; CannotServe when one cannot be (nothing runs then)."""
        try:
            for plane in self.planes:
                await self._serve(plane)
        except BaseException:
            await self.drain()
            raise
        if self.discover is not None:
            self._discovery = asyncio.create_task(self._discover_forever(self.discover))

    @property
    def served(self) -> list[ServedDataPlane]:
        return [serving.plane for serving in self._serving.values()]

    async def _serve(self, plane: ServedDataPlane) -> None:
        runtime = await self.runtime_for(plane)
        key = plane.routing_key
        admission = self.admission if plane.is_installation_local else None
        machine = StepMachine(
            sessions=self.sessions,
            box=self.box,
            runtime=runtime,
            owner=self.name,
            pause_after_step=self.pause_after_step,
            after_commit=self.after_commit,
            health_timeout_s=self.health_timeout_s,
            admission=admission,
        )
        reader = LogReader(self.sessions, self.box, runtime, key)
        consumers = [
            await self.bus.consume_commands(
                key, machine.handle_command, concurrency=self.concurrency
            ),
            await self.bus.consume_dead_letters(key, machine.handle_dead_letter),
            await self.bus.serve_requests(key, reader.answer),
        ]
        supervisor = Supervisor(
            sessions=self.sessions,
            box=self.box,
            runtime=runtime,
            data_plane=key,
            owner=self.name,
            plane_label=plane.label,
            after_commit=self.after_commit,
            health_timeout_s=self.health_timeout_s,
            admission=admission or LocalAdmission(),
        )
        self._serving[key] = _Serving(
            plane=plane,
            runtime=runtime,
            machine=machine,
            supervisor=supervisor,
            consumers=consumers,
            supervision=asyncio.create_task(supervisor.run()),
        )
        # Embedded mode keeps commands in memory, so a crash loses them: announce again what
        # has not ended (on RabbitMQ the copy is redundant, and harmless).
        await announce_unfinished_changes(
            self.sessions, key, why=f"worker {self.name} started", after_commit=self.after_commit
        )
        log.info(
            "worker %s serves data plane %s (%s) with concurrency %d",
            self.name,
            plane.label,
            plane.runtime.value,
            self.concurrency,
        )

    async def report_metrics(self) -> None:
        """Its data planes' queue depths and instances, into their gauges (at a scrape)."""
        for serving in list(self._serving.values()):
            await report_data_plane(self.bus, serving.plane, serving.runtime)

    def look_for_data_planes(self) -> None:
        """Look for new data planes now (embedded mode calls it after each commit of the API:
        a data plane created a moment ago is served before its first deploy waits)."""
        self._look_now.set()

    async def _discover_forever(self, discover: Discovery) -> None:
        # Rounds for as long as the worker runs, not a retry (no tenacity): a round that fails
        # is logged, and the next comes at its time or when a commit asks for it.
        while True:
            self._look_now.clear()
            try:
                for plane in await discover():
                    if plane.routing_key in self._serving:
                        continue
                    try:
                        await self._serve(plane)
                        self.unserved.pop(plane.routing_key, None)
                    except CannotServe as refusal:
                        if self.unserved.get(plane.routing_key) != str(refusal):
                            log.warning("not serving %s", refusal)
                        self.unserved[plane.routing_key] = str(refusal)
            except Exception:
                log.exception("looking for data planes failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._look_now.wait(), DISCOVERY_INTERVAL_S)

    async def drain(self) -> None:
        """Take no new command; wait for the running ones."""
        if self._discovery is not None:
            self._discovery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._discovery
            self._discovery = None
        servings = list(self._serving.values())
        self._serving.clear()
        for serving in servings:
            for consumer in serving.consumers:
                await consumer.stop()
        for serving in servings:
            await serving.machine.close()
            serving.supervisor.stop()
            await serving.supervision
            if self.stop_instances_on_drain:
                await serving.supervisor.stop_all()


class Gateway(BackgroundServer):
    """The data planes' HTTP gateway, served in this process."""

    def __init__(self, settings: Settings) -> None:
        settings.runtime_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            create_gateway_app(settings.runtime_dir / "routes.json"),
            host=settings.gateway_host,
            port=settings.gateway_port,
            setting="PROMENADE_GATEWAY_PORT",
            access_log=False,
        )
