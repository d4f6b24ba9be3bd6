"""Supervision: every ACTIVE deployment of the data plane has its instance running, and nothing
else runs.

On start and then periodically:
- for each ACTIVE deployment whose lease is free (no change in progress), the instance of the
  change that serves it is started if it is not running (the runtime's ``start`` is idempotent:
  a live instance is returned as it is), routed, and any other instance of it retired. This
  restarts an integration that crashed (an event says how it ended), and brings back the
  integrations after the machine or ``promenade up`` restarted. One that cannot start is
  marked ERROR with the reason.
- instances of deployments that should run nothing (suspended, failed, deleted: left behind by
  a worker that died between two steps) are stopped and removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import SessionFactory, session_scope
from app.models import (
    DataPlane,
    Deployment,
    DeploymentStatus,
    Environment,
    Organization,
)
from app.models.base import utcnow
from app.services.change_queue import pending_change
from app.services.dataplanes import LocalAdmission, served_by
from app.services.events import announce_deployment
from app.services.lifecycle import move_deployment
from workers.announcements import announce_unfinished_changes
from workers.instances import InstanceTarget, running_targets, start_instance, target_of
from workers.leases import release_lease, take_lease
from workers.metrics import count_restart
from workers.runtimes.base import Runtime, StartFailed

log = logging.getLogger(__name__)

SUPERVISION_INTERVAL_S = 10.0
# A change this old, pending while its deployment's lease is free, was left behind.
STRANDED_AFTER = timedelta(seconds=5)


@dataclass
class Supervisor:
    sessions: SessionFactory
    box: SecretBox
    runtime: Runtime
    # The routing key of the data plane it watches (its id, or "local").
    data_plane: str
    owner: str
    # How the metrics name that data plane (its ServedDataPlane.label, never its id).
    plane_label: str = "local"
    interval_s: float = SUPERVISION_INTERVAL_S
    health_timeout_s: float = 30.0
    # Whether stranded changes are announced again (through the outbox; after_commit wakes
    # the process's relay).
    announce_stranded: bool = True
    after_commit: Callable[[], None] = lambda: None
    admission: LocalAdmission = field(default_factory=LocalAdmission)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        # Rounds until stopped, not a retry: a round that fails is logged, the next one runs.
        while not self._stop.is_set():
            try:
                await self.reconcile()
            except Exception:
                log.exception("supervision round failed; trying again in %.0f s", self.interval_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def stop(self) -> None:
        self._stop.set()

    async def _active(self, session: AsyncSession) -> list[Deployment]:
        """The data plane's ACTIVE deployments that run a change, of organizations it admits."""
        rows = await session.exec(
            select(Deployment, Organization.slug)
            .join(Environment, col(Environment.id) == col(Deployment.environment_id))
            .join(DataPlane, col(DataPlane.id) == col(Environment.data_plane_id))
            .join(Organization, col(Organization.id) == col(Deployment.organization_id))
            .where(
                served_by(self.data_plane),
                col(Deployment.status) == DeploymentStatus.ACTIVE,
                col(Deployment.running_change_id).is_not(None),
            )
        )
        return [deployment for deployment, slug in rows.all() if self.admission.admits(slug)]

    async def active_deployments(self) -> list[str]:
        async with self.sessions() as session:
            return [deployment.id for deployment in await self._active(session)]

    async def reconcile(self) -> None:
        await self._announce_stranded_changes()
        # What each active deployment runs is read for all of them at once; the lease of each
        # is then taken only while it still runs that change (a change that finished since
        # moved it on, and is what runs now).
        async with self.sessions() as session:
            active = await self._active(session)
            running = await running_targets(session, active)
        for change, place, build in running:
            if self._stop.is_set():
                return
            deployment_id = change.deployment_id
            if not await take_lease(
                self.sessions, deployment_id, self.owner, while_running=change.id
            ):
                continue  # busy (a change is being applied, and it decides what runs), or moved on
            try:
                await self._keep_running(target_of(self.box, change, place, build))
            finally:
                await release_lease(self.sessions, deployment_id, self.owner)
        for deployment_id in await self.runtime.deployments() - {d.id for d in active}:
            if self._stop.is_set():
                return
            await self._holding_lease(deployment_id, self._stop_if_idle)
        await self.runtime.collect_garbage()

    async def _holding_lease(self, deployment_id: str, work: _Work) -> None:
        # Busy: a change is being applied, and it decides what runs.
        if not await take_lease(self.sessions, deployment_id, self.owner):
            return
        try:
            await work(deployment_id)
        finally:
            await release_lease(self.sessions, deployment_id, self.owner)

    async def _announce_stranded_changes(self) -> None:
        """Changes that wait while nobody holds their deployment's lease: a worker died holding
        it after the commands behind it were acknowledged."""
        if self.announce_stranded:
            await announce_unfinished_changes(
                self.sessions,
                self.data_plane,
                why=f"stranded, seen by {self.owner}",
                stranded_before=utcnow() - STRANDED_AFTER,
                after_commit=self.after_commit,
            )

    async def _keep_running(self, target: InstanceTarget) -> None:
        change = target.change
        deployment_id = change.deployment_id
        try:
            instance = await start_instance(
                self.runtime, target, health_timeout_s=self.health_timeout_s
            )
            await self.runtime.route(deployment_id, target.route, instance)
            await self.runtime.retire_others(deployment_id, keep_change_id=change.id)
        except StartFailed as failure:
            log.warning("deployment %s does not run: %s", deployment_id, failure)
            async with session_scope(self.sessions) as session:
                deployment = await session.get(Deployment, deployment_id)
                if deployment is not None and deployment.status is DeploymentStatus.ACTIVE:
                    move_deployment(session, deployment, DeploymentStatus.ERROR)
                    deployment.last_error = f"the running instance stopped: {failure}"
                    await announce_deployment(session, deployment, detail=deployment.last_error)
            return
        if instance.restarted_after is not None:
            reason = instance.restarted_after
            log.warning("deployment %s: its instance %s; restarted", deployment_id, reason)
            count_restart(self.plane_label)
            async with session_scope(self.sessions) as session:
                deployment = await session.get(Deployment, deployment_id)
                if deployment is not None and deployment.status is DeploymentStatus.ACTIVE:
                    # Shown until the next change succeeds: how the last instance ended.
                    deployment.last_error = f"the instance {reason}; it was restarted"
                    await announce_deployment(session, deployment, detail=deployment.last_error)

    async def _stop_if_idle(self, deployment_id: str) -> None:
        """Stop the instances of a deployment that should run none, unless a change of it is
        pending (its worker decides what runs)."""
        async with self.sessions() as session:
            deployment = await session.get(Deployment, deployment_id)
            if deployment is not None and deployment.status is DeploymentStatus.ACTIVE:
                return
            pending = await pending_change(session, deployment_id)
        if pending is None:
            log.info("stopping the instances of %s, which should run none", deployment_id)
            await self.runtime.stop(deployment_id, "")

    async def stop_all(self) -> None:
        """Stop the instances of every ACTIVE deployment (embedded mode, at shutdown); the
        next start brings them back."""
        for deployment_id in await self.active_deployments():
            await self.runtime.stop(deployment_id, "")


_Work = Callable[[str], Awaitable[None]]
