"""``promenade up``: the embedded composition. One process runs the API (with its outbox relay),
the in-process bus, a worker for the installation's data planes (the ``local`` one and every
CONTAINER one of an admitted organization) and their gateway, on SQLite in the data directory.
The first start on an empty database creates an admin user and an organization and prints a
token."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from app import migrate
from app.crypto import SecretBox
from app.db import create_session_factory, session_scope
from app.main import create_app
from app.messaging.outbox import OutboxRelay
from app.models import RuntimeKind
from app.processes.api import serve
from app.processes.maintenance import print_bootstrapped
from app.processes.startup import configure_logging, engine_for
from app.services.bootstrap import bootstrap, is_empty
from app.services.dataplane_settings import ContainerSettings
from app.services.dataplanes import (
    INSTALLATION_LOCAL,
    LocalAdmission,
    ServedDataPlane,
    served_data_planes,
)
from app.settings import Settings

if TYPE_CHECKING:
    from workers.planes import Runtimes
    from workers.service import Worker

EMBEDDED_ADMIN_EMAIL = "admin@localhost"
EMBEDDED_ORGANIZATION = "default"


async def run_up(settings: Settings, args: argparse.Namespace) -> None:
    """API, outbox relay, in-process bus, a worker for the installation's data planes (the
    ``local`` one and every CONTAINER one) and their gateway, in one process."""
    configure_logging()
    from app.messaging.inprocess import InProcessBus
    from workers.planes import Runtimes
    from workers.service import Gateway, Worker

    settings.private_data_dir()
    settings.resolved_secret_key()  # generated once into the data directory
    engine = engine_for(settings)
    try:
        await migrate.upgrade(engine)
        async with session_scope(create_session_factory(engine)) as session:
            if await is_empty(session):
                result = await bootstrap(
                    session,
                    email=EMBEDDED_ADMIN_EMAIL,
                    name="Admin",
                    organization_slug=EMBEDDED_ORGANIZATION,
                )
                print_bootstrapped(result)
        async with contextlib.AsyncExitStack() as stack:
            bus = InProcessBus()
            stack.push_async_callback(bus.close)
            sessions = create_session_factory(engine)
            worker: Worker | None = None

            def after_commit() -> None:
                if worker is not None:
                    worker.look_for_data_planes()  # a data plane created or changed

            async def worker_metrics() -> None:
                if worker is not None:
                    await worker.report_metrics()

            # One registry for the API and the worker: the API's /metrics reports both.
            app = create_app(
                settings,
                engine=engine,
                bus=bus,
                on_commit=after_commit,
                metrics_refreshers=[worker_metrics],
            )
            relay: OutboxRelay = app.state.relay

            admission = LocalAdmission(settings.local_admission())

            async def container_planes() -> list[ServedDataPlane]:
                """The CONTAINER data planes of the organizations the installation admits:
                in embedded mode they run on the operator's machine too."""
                async with sessions() as session:
                    planes = await served_data_planes(session, frozenset({RuntimeKind.CONTAINER}))
                return [p for p in planes if p.organization and admission.admits(p.organization)]

            runtimes = Runtimes.for_settings(settings)
            worker = Worker(
                sessions=sessions,
                box=SecretBox(settings.secret_keys()),
                bus=bus,
                runtime_for=runtimes.runtime_for,
                planes=[INSTALLATION_LOCAL],
                discover=container_planes,
                stop_instances_on_drain=True,
                after_commit=relay.wake,
                health_timeout_s=settings.health_timeout_s,
                admission=admission,
            )
            await worker.start()
            stack.push_async_callback(worker.drain)
            gateway = Gateway(settings)
            await gateway.start()
            stack.push_async_callback(gateway.stop)
            print(f"Gateway at {settings.resolved_gateway_url}", file=sys.stderr)
            await _print_isolation(settings, runtimes)
            await serve(settings, args, app)
    finally:
        await engine.dispose()


async def _print_isolation(settings: Settings, runtimes: Runtimes) -> None:
    """Say how integrations are isolated here, and how to run them in containers."""
    from app.settings import DEFAULT_DOCKER_HOST
    from workers.runtimes.container import ContainerRuntime, EngineUnavailable

    if runtimes.users is not None:
        print(
            "LOCAL_PROCESS: each deployment's instances run as a Unix user of their own",
            file=sys.stderr,
        )
    else:
        print(f"LOCAL_PROCESS: not isolated: {runtimes.sandbox_refusal}", file=sys.stderr)
    probe = ContainerRuntime(
        settings.containers_dir,
        runtimes.routes,
        data_plane="probe",
        settings=ContainerSettings(),
        docker_host=settings.docker_host,
    )
    try:
        version = await probe.check()
    except EngineUnavailable as exc:
        print(
            f"CONTAINER: unavailable ({exc}); CONTAINER data planes wait until a Docker "
            f"Engine answers at DOCKER_HOST (default {DEFAULT_DOCKER_HOST})",
            file=sys.stderr,
        )
    else:
        print(
            f"CONTAINER: Docker Engine {version} at {probe.docker_host}. For isolated "
            "integrations, create a data plane with runtime CONTAINER (createDataPlane) and "
            "environments on it; a build's artifact is then an image the engine has "
            "(README: 'Integrations in containers')",
            file=sys.stderr,
        )
    finally:
        probe.close()
