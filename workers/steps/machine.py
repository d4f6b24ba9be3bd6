"""The driver of the step machine: a command names a change; the handler that holds the
deployment's lease runs the deployment's pending changes in order, each through the steps of
its status (``queued``, ``applying``, ``restarting``, ``ending``), one commit a step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import SessionFactory, session_scope
from app.log_lines import describe, record_secrets, working_on
from app.messaging.bus import DELIVERY_LIMIT, Message
from app.models import ChangeStatus, Deployment, DeploymentChange, Environment, Promotion
from app.models.base import utcnow
from app.models.promotions import FINAL_CHANGE_STATUSES
from app.services.dataplanes import LocalAdmission
from app.services.verification import Outcome, verification_of
from workers.instances import InstanceTarget, instance_target
from workers.leases import lease, release_lease, renewing_lease, unlease
from workers.runtimes.base import Runtime, StartFailed
from workers.steps.applying import apply
from workers.steps.ending import fail, succeed, verification_failed, verified
from workers.steps.queued import take
from workers.steps.restarting import restart
from workers.steps.rows import load_change
from workers.steps.verifying import verify

log = logging.getLogger(__name__)

# After a held lease's expiry, a moment more before looking again.
LOOK_AGAIN_MARGIN_S = 0.5


@dataclass
class StepMachine:
    sessions: SessionFactory
    box: SecretBox
    runtime: Runtime
    owner: str  # this worker's name, for leases
    # Crash testing: after this step the worker waits forever (see Settings.pause_after_step).
    pause_after_step: str | None = None
    # How long a new instance has to answer its health check (Settings.health_timeout_s).
    health_timeout_s: float = 30.0
    # On the installation's local data plane: which organizations it runs (None: any).
    admission: LocalAdmission | None = None
    _waiting: set[asyncio.Task[None]] = field(default_factory=set)
    # Called after each commit: it wakes this process's outbox relay, so that the events and
    # commands a step recorded leave now rather than at the relay's next poll.
    after_commit: Callable[[], None] = lambda: None

    # ---- entry points -------------------------------------------------------------------

    async def handle_command(self, message: Message) -> None:
        """Run the deployment's pending changes in order while holding its lease.

        The message names one change, but whoever holds the lease runs every pending change of
        the deployment, and looks once more after releasing it: a change that arrived while
        another handler held the lease is never left behind. So a handler that finds the lease
        taken need not wait for it, unless its change is the next one due (its holder may have
        died running it: then the lease expires and this handler takes over). Waiting only then
        keeps one deployment's backlog from occupying every consumer slot."""
        deployment_id = str(message.body["deployment_id"])
        own_change = str(message.body["change_id"])
        # One lease owner per handler call, not per worker: the consumers of one worker run
        # side by side, and a lease they all owned would let them in together.
        owner = f"{self.owner}/{uuid.uuid4().hex[:8]}"
        # Its lines name the deployment and the change (run names the one it runs).
        with working_on(change_id=own_change, deployment_id=deployment_id):
            while True:
                # The lease and the look for the next change in one transaction, and the release
                # and the look once more in one: the look after the release sees every change whose
                # handler found the lease taken (that change committed before its command left).
                taken, due = await self._lease_and_look(deployment_id, owner)
                if not taken:
                    if due == own_change:
                        # Due, and someone holds the lease: it is running this change, or died
                        # doing so. Look again once that lease would have expired, without
                        # keeping this consumer slot meanwhile.
                        await self._look_again_later(message)
                    return  # otherwise the holder, or the due change's own command, gets to it
                try:
                    if due is not None:
                        async with renewing_lease(self.sessions, deployment_id, owner):
                            await self.run(due)
                except BaseException as exc:
                    await release_lease(self.sessions, deployment_id, owner)
                    if due == own_change or not isinstance(exc, Exception):
                        raise  # retried through this command's deliveries
                    # Another change's failure counts against that change's command, which
                    # retries it; this one runs in its turn.
                    log.warning("change %s waits behind %s, which failed", own_change, due)
                    return
                if await self._release_and_look(deployment_id, owner) is None:
                    return

    async def _lease_and_look(self, deployment_id: str, owner: str) -> tuple[bool, str | None]:
        async with session_scope(self.sessions) as session:
            taken = await lease(session, deployment_id, owner)
            return taken, await self._next_change(session, deployment_id)

    async def _release_and_look(self, deployment_id: str, owner: str) -> str | None:
        async with session_scope(self.sessions) as session:
            await unlease(session, deployment_id, owner)
            return await self._next_change(session, deployment_id)

    async def _look_again_later(self, message: Message) -> None:
        async with self.sessions() as session:
            deployment = await session.get(Deployment, str(message.body["deployment_id"]))
        expires = deployment.lease_expires_at if deployment else None
        delay = (expires - utcnow()).total_seconds() if expires else 0.0
        task = asyncio.create_task(self._later(message, max(delay, 0.0) + LOOK_AGAIN_MARGIN_S))
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)

    async def _later(self, message: Message, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        try:
            await self.handle_command(message)
        except Exception:
            # Its command was acknowledged: the supervisor announces it again if it strands.
            log.exception("change %s failed when looked at again", message.body.get("change_id"))

    async def close(self) -> None:
        """Stop the pending looks (a stopping worker leaves them to the next worker's start)."""
        for task in list(self._waiting):
            task.cancel()
        await asyncio.gather(*self._waiting, return_exceptions=True)

    async def handle_dead_letter(self, message: Message) -> None:
        """A command that exhausted its deliveries: its change, and promotion, failed; the
        deployment's next changes run."""
        change_id = str(message.body["change_id"])
        with working_on(change_id=change_id):
            async with self._transaction() as session:
                change = await session.get(DeploymentChange, change_id)
                if change is None or change.status.is_final:
                    return
                describe(change)
                reason = (
                    f"gave up after {DELIVERY_LIMIT} deliveries: "
                    f"{change.error or 'the worker failed each time'}"
                )
                await fail(session, change, reason)
        # The changes queued behind it waited for this one: their turn now.
        await self.handle_command(message)

    async def run(self, change_id: str) -> None:
        # Every line of the change's work names it, and shows none of its secret values.
        with working_on(change_id=change_id) as change_log:
            try:
                await self._run(change_id)
            except Exception as exc:
                # Recorded so that a dead-lettered command can say why; the message is retried.
                # Masked like a failed start's reason: the error may quote the configuration.
                log.exception("change %s failed unexpectedly; it will be retried", change_id)
                async with self._transaction() as session:
                    change = await session.get(DeploymentChange, change_id)
                    if change is not None and not change.status.is_final:
                        change.error = change_log.masked(f"{type(exc).__name__}: {exc}")[:2000]
                        session.add(change)
                raise

    # ---- the steps, from the status the change is in -----------------------------------------

    async def _run(self, change_id: str) -> None:
        async with self._transaction() as session:
            change = await load_change(session, change_id)
            describe(change)
            if change.status is ChangeStatus.QUEUED and not await take(
                session, change, admission=self.admission
            ):
                return
        await self._pause_after("QUEUED")
        target: InstanceTarget | None = None
        if change.status is ChangeStatus.APPLYING_CONFIGURATION:
            async with self._transaction() as session:
                change = await load_change(session, change_id)
                await apply(session, self.box, change)
                if change.status is ChangeStatus.RESTARTING:
                    # What the restart runs, read with what was just applied.
                    target = await instance_target(session, self.box, change)
                    record_secrets(target.secret_values)
            if change.status is not ChangeStatus.RESTARTING:
                return  # refused: it failed
            await self._pause_after("APPLYING_CONFIGURATION")
        if change.status is ChangeStatus.RESTARTING:
            if target is None:  # a change taken over at this step
                async with self._transaction() as session:
                    target = await instance_target(session, self.box, change)
                record_secrets(target.secret_values)
            try:
                endpoint = await restart(
                    self.runtime,
                    target,
                    health_timeout_s=self.health_timeout_s,
                    pause=self._pause_after,
                )
            except StartFailed as failure:
                async with self._transaction() as session:
                    await fail(session, await load_change(session, change_id), str(failure))
                return
            async with self._transaction() as session:
                change = await load_change(session, change_id)
                await succeed(session, change, endpoint)
            if change.status is ChangeStatus.VERIFYING:
                await self._pause_after("RESTARTING")
        if change.status is ChangeStatus.VERIFYING:
            await self._verify(change_id)

    async def _verify(self, change_id: str) -> None:
        """The deployment's checks, against its endpoint (no transaction held meanwhile: a
        worker killed here leaves the change VERIFYING, and the next one runs them again)."""
        async with self._transaction() as session:
            change = await load_change(session, change_id)
            deployment = await session.get(Deployment, change.deployment_id)
            assert deployment is not None
            verification = verification_of(deployment)
            endpoint = deployment.endpoint_url
        started = utcnow()
        if verification is None or endpoint is None:  # the checks were removed meanwhile
            outcome = Outcome(passed=True, checks=[])
        else:
            outcome = await verify(endpoint, verification)
        async with self._transaction() as session:
            change = await load_change(session, change_id)
            if outcome.passed:
                await verified(session, change, outcome, started)
            else:
                await verification_failed(session, change, outcome, started)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with session_scope(self.sessions) as session:
            yield session
        self.after_commit()

    async def _pause_after(self, step: str) -> None:
        if self.pause_after_step == step:
            log.warning("pausing after %s for a crash test (PROMENADE_PAUSE_AFTER_STEP)", step)
            await asyncio.Event().wait()

    @staticmethod
    async def _next_change(session: AsyncSession, deployment_id: str) -> str | None:
        """The deployment's oldest change that has not ended, unless it has not started and its
        environment is frozen: then the deployment waits (unfreezing announces it again), but
        for an emergency promotion's change, which an ADMIN sent past the freeze, and an
        automatic rollback (a change with a reason), which restores what ran before."""
        row = (
            await session.exec(
                select(
                    DeploymentChange.id,
                    DeploymentChange.status,
                    Environment.frozen,
                    # Sent past the freeze: an emergency, or an automatic rollback.
                    or_(
                        col(Promotion.emergency_reason).is_not(None),
                        col(DeploymentChange.reason).is_not(None),
                    ).label("passes_freeze"),
                )
                .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
                .join(Environment, col(Environment.id) == col(Deployment.environment_id))
                .outerjoin(Promotion, col(Promotion.id) == col(DeploymentChange.promotion_id))
                .where(
                    DeploymentChange.deployment_id == deployment_id,
                    col(DeploymentChange.status).not_in(FINAL_CHANGE_STATUSES),
                )
                .order_by(col(DeploymentChange.created_at), col(DeploymentChange.id))
                .limit(1)
            )
        ).first()
        if row is None:
            return None
        change_id, status, frozen, passes_freeze = row
        if frozen and status is ChangeStatus.QUEUED and not passes_freeze:
            log.info("change %s waits: its environment is frozen", change_id)
            return None
        return change_id
