"""The step machine: QUEUED -> APPLYING_CONFIGURATION -> RESTARTING -> SUCCEEDED or FAILED.

Each step ends with a commit that records it, so a worker killed at any point leaves a state
the next worker resumes from: configuration is applied once (the commit that applies it also
moves the change to RESTARTING), the runtime's calls are idempotent by change id, and the
revision is written in the same commit that marks the change SUCCEEDED (and the database
refuses a second row for the same revision number).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import SessionFactory, session_scope
from app.messaging.bus import DELIVERY_LIMIT, Message
from app.models import (
    ChangeKind,
    ChangeStatus,
    Deployment,
    DeploymentChange,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Integration,
    Promotion,
    PromotionStatus,
    RevisionCause,
)
from app.models.base import utcnow
from app.models.promotions import FINAL_CHANGE_STATUSES
from app.services import audit
from app.services.configuration import (
    apply_entries,
    effective_values,
    missing_keys,
    plaintext_values,
    replace_values,
    schema_of,
    stored_values,
)
from app.services.dataplanes import LocalAdmission
from app.services.events import announce_deployment
from app.services.lifecycle import (
    PROMOTION_STATUS_OF_CHANGE,
    move_change,
    move_deployment,
    move_promotion,
)
from app.services.promotions import sealed_entries
from workers.instances import instance_target
from workers.leases import holding_lease, take_lease
from workers.runtimes.base import Runtime, StartFailed

log = logging.getLogger(__name__)

# Kinds that apply a new revision; SUSPEND and RESUME stop and start the current one.
REVISION_CAUSES = {
    ChangeKind.DEPLOY: RevisionCause.DEPLOY,
    ChangeKind.PROMOTION: RevisionCause.PROMOTION,
    ChangeKind.CONFIG_CHANGE: RevisionCause.CONFIG_CHANGE,
    ChangeKind.RESTART: RevisionCause.RESTART,
    ChangeKind.ROLLBACK: RevisionCause.ROLLBACK,
}

# Kinds that run the values stored when they run, so values stored after a review (or after
# a protected restart was asked for) would run unseen. A rollback runs a revision's own.
VERSION_CHECKED = frozenset(
    {ChangeKind.DEPLOY, ChangeKind.PROMOTION, ChangeKind.CONFIG_CHANGE, ChangeKind.RESTART}
)


# After a held lease's expiry, a moment more before looking again.
LOOK_AGAIN_MARGIN_S = 0.5


class ChangeRefused(Exception):
    """The change cannot be applied as asked (required configuration went missing, say)."""


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
        while True:
            if not await take_lease(self.sessions, deployment_id, owner):
                if await self._next_change(deployment_id) == own_change:
                    # Due, and someone holds the lease: it is running this change, or died
                    # doing so. Look again once that lease would have expired, without
                    # keeping this consumer slot meanwhile.
                    await self._look_again_later(message)
                return  # otherwise the holder, or the due change's own command, gets to it
            async with holding_lease(self.sessions, deployment_id, owner):
                while (change_id := await self._next_change(deployment_id)) is not None:
                    try:
                        await self.run(change_id)
                    except Exception:
                        if change_id == own_change:
                            raise  # retried through this command's deliveries
                        # Another change's failure counts against that change's command,
                        # which retries it; this one runs in its turn.
                        log.warning(
                            "change %s waits behind %s, which failed", own_change, change_id
                        )
                        return
            if await self._next_change(deployment_id) is None:
                return

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
        async with self._transaction() as session:
            change = await session.get(DeploymentChange, change_id)
            if change is None or change.status.is_final:
                return
            reason = (
                f"gave up after {DELIVERY_LIMIT} deliveries: "
                f"{change.error or 'the worker failed each time'}"
            )
            await self._fail(session, change, reason)
        # The changes queued behind it waited for this one: their turn now.
        await self.handle_command(message)

    async def run(self, change_id: str) -> None:
        try:
            await self._run(change_id)
        except Exception as exc:
            # Recorded so that a dead-lettered command can say why; the message is retried.
            log.exception("change %s failed unexpectedly; it will be retried", change_id)
            async with self._transaction() as session:
                change = await session.get(DeploymentChange, change_id)
                if change is not None and not change.status.is_final:
                    change.error = f"{type(exc).__name__}: {exc}"[:2000]
                    session.add(change)
            raise

    # ---- the steps -------------------------------------------------------------------------

    async def _run(self, change_id: str) -> None:
        async with self._transaction() as session:
            change = await self._change(session, change_id)
            if change.status is ChangeStatus.QUEUED and self.admission is not None:
                refusal = await self.admission.refusal(session, change.organization_id)
                if refusal is not None:
                    await self._fail(session, change, refusal)
                    return
            if change.status is ChangeStatus.QUEUED:
                # Conditional: a cancel may have won the race for this change.
                taken = await session.exec(
                    update(DeploymentChange)
                    .where(
                        col(DeploymentChange.id) == change.id,
                        col(DeploymentChange.status) == ChangeStatus.QUEUED,
                    )
                    .values(status=ChangeStatus.APPLYING_CONFIGURATION)
                )
                if not taken.rowcount:
                    return
                await session.refresh(change)
                await self._promotion_status(
                    session, change, PromotionStatus.APPLYING_CONFIGURATION, None
                )
        await self._pause_after("QUEUED")
        if change.status is ChangeStatus.APPLYING_CONFIGURATION:
            async with self._transaction() as session:
                change = await self._change(session, change_id)
                try:
                    await self._apply_configuration(session, change)
                except ChangeRefused as refusal:
                    await self._fail(session, change, str(refusal))
                    return
                await self._enter(session, change, ChangeStatus.RESTARTING)
            await self._pause_after("APPLYING_CONFIGURATION")
        if change.status is ChangeStatus.RESTARTING:
            try:
                endpoint = await self._restart(change)
            except StartFailed as failure:
                async with self._transaction() as session:
                    await self._fail(session, await self._change(session, change_id), str(failure))
                return
            async with self._transaction() as session:
                await self._succeed(session, await self._change(session, change_id), endpoint)

    async def _apply_configuration(self, session: AsyncSession, change: DeploymentChange) -> None:
        """Write what the change sets and freeze the configuration it will run with."""
        deployment = await self._deployment(session, change.deployment_id)
        integration = await session.get(Integration, deployment.integration_id)
        assert integration is not None
        if (
            change.expected_config_version is not None
            and change.kind in VERSION_CHECKED
            and deployment.config_version != change.expected_config_version
        ):
            # What runs must be what was reviewed (or, for a restart in a protected
            # environment, what was stored when it was asked for): values stored since
            # would run unreviewed.
            raise ChangeRefused(
                "the configuration changed after the request was filed: file a new request "
                "for what is there now"
            )
        if change.kind is ChangeKind.PROMOTION:
            promotion = await session.get(Promotion, change.promotion_id)
            assert promotion is not None
            overrides, copied = sealed_entries(self.box, promotion)
            have = await stored_values(session, deployment.id)
            # Copied values fill only keys that are still empty when the promotion runs.
            entries = overrides + [e for e in copied if e.key not in have]
            if entries:
                await apply_entries(
                    session,
                    box=self.box,
                    integration=integration,
                    deployment=deployment,
                    entries=entries,
                )
        elif change.kind is ChangeKind.ROLLBACK:
            revision = await self._revision(session, deployment.id, change.rollback_to_revision)
            await replace_values(
                session,
                box=self.box,
                integration=integration,
                deployment=deployment,
                values=self.box.open_json(revision.snapshot_sealed),
            )
        if change.kind is ChangeKind.SUSPEND:
            return
        if change.kind is ChangeKind.RESUME:
            current = await self._revision(session, deployment.id, deployment.revision)
            change.build_id = current.build_id
            change.snapshot_sealed = current.snapshot_sealed
            change.snapshot_digest = current.configuration_digest
            change.snapshot_config_version = deployment.applied_config_version
            session.add(change)
            return
        values = await plaintext_values(session, box=self.box, deployment_id=deployment.id)
        schema = schema_of(integration)
        missing = missing_keys(schema, values)
        if missing:
            raise ChangeRefused(f"required configuration has no value: {', '.join(missing)}")
        if change.build_id is None:
            change.build_id = deployment.build_id
        change.snapshot_sealed = self.box.seal_json(values)
        change.snapshot_digest = self.box.digest(effective_values(schema, values))
        change.snapshot_config_version = deployment.config_version
        session.add(change)

    async def _restart(self, change: DeploymentChange) -> str | None:
        """Start the new instance, route to it, retire the old: no transaction is held while
        processes start. Returns the endpoint URL (None for a suspend)."""
        async with self._transaction() as session:
            target = await instance_target(session, self.box, change)
        if change.kind is ChangeKind.SUSPEND:
            await self.runtime.stop(change.deployment_id, target.route)
            return None
        try:
            instance = await self.runtime.start(target.spec(health_timeout_s=self.health_timeout_s))
        except StartFailed as failure:
            # Its output may show its configuration: no secret goes into lastError.
            raise StartFailed(target.without_secrets(str(failure))) from None
        await self._pause_after("STARTED")
        endpoint = await self.runtime.route(change.deployment_id, target.route, instance)
        await self.runtime.retire_others(change.deployment_id, keep_change_id=change.id)
        await self._pause_after("ROUTED")
        return endpoint

    async def _succeed(
        self, session: AsyncSession, change: DeploymentChange, endpoint: str | None
    ) -> None:
        if change.status.is_final:
            return
        deployment = await self._deployment(session, change.deployment_id)
        cause = REVISION_CAUSES.get(change.kind)
        if cause is not None:
            assert change.build_id and change.snapshot_sealed and change.snapshot_digest
            deployment.revision += 1
            session.add(
                DeploymentRevision(
                    deployment_id=deployment.id,
                    revision=deployment.revision,
                    build_id=change.build_id,
                    configuration_digest=change.snapshot_digest,
                    snapshot_sealed=change.snapshot_sealed,
                    cause=cause,
                    change_id=change.id,
                    promotion_id=change.promotion_id,
                    actor_id=change.actor_id,
                )
            )
        if change.kind is ChangeKind.SUSPEND:
            move_deployment(session, deployment, DeploymentStatus.SUSPENDED)
            deployment.endpoint_url = None
            deployment.running_change_id = None
        else:
            move_deployment(session, deployment, DeploymentStatus.ACTIVE)
            deployment.build_id = change.build_id
            deployment.endpoint_url = endpoint
            deployment.running_change_id = change.id
            if change.snapshot_config_version is not None:
                deployment.applied_config_version = change.snapshot_config_version
        deployment.last_error = None
        move_change(session, change, ChangeStatus.SUCCEEDED)
        audit.record(
            session,
            organization_id=deployment.organization_id,
            actor=change.actor_id,
            action="change.succeeded",
            subject_id=deployment.id,
            change_id=change.id,
            kind=change.kind.value,
            revision=deployment.revision,
            promotion_id=change.promotion_id,
        )
        await self._promotion_status(
            session, change, PromotionStatus.SUCCEEDED, f"revision {deployment.revision} is live"
        )
        await announce_deployment(session, deployment, detail=f"{change.kind.value} succeeded")

    async def _fail(self, session: AsyncSession, change: DeploymentChange, reason: str) -> None:
        """The change failed; whatever ran before keeps running."""
        if change.status.is_final:
            return
        deployment = await self._deployment(session, change.deployment_id)
        deployment.last_error = reason
        if deployment.status is DeploymentStatus.IN_PROGRESS:
            move_deployment(session, deployment, DeploymentStatus.ERROR)
        move_change(session, change, ChangeStatus.FAILED, error=reason)
        audit.record(
            session,
            organization_id=deployment.organization_id,
            actor=change.actor_id,
            action="change.failed",
            subject_id=deployment.id,
            change_id=change.id,
            kind=change.kind.value,
            reason=reason[:2000],
            promotion_id=change.promotion_id,
        )
        if change.promotion_id is not None:
            promotion = await session.get(Promotion, change.promotion_id)
            assert promotion is not None
            promotion.error = reason
        await self._promotion_status(session, change, PromotionStatus.FAILED, reason)
        await announce_deployment(session, deployment, detail=f"{change.kind.value} failed")

    async def _enter(
        self, session: AsyncSession, change: DeploymentChange, status: ChangeStatus
    ) -> None:
        move_change(session, change, status)
        await self._promotion_status(session, change, PROMOTION_STATUS_OF_CHANGE[status], None)

    async def _promotion_status(
        self,
        session: AsyncSession,
        change: DeploymentChange,
        status: PromotionStatus,
        detail: str | None,
    ) -> None:
        if change.promotion_id is None:
            return
        promotion = await session.get(Promotion, change.promotion_id)
        assert promotion is not None
        await move_promotion(session, promotion, status, detail=detail)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with session_scope(self.sessions) as session:
            yield session
        self.after_commit()

    async def _pause_after(self, step: str) -> None:
        if self.pause_after_step == step:
            log.warning("pausing after %s for a crash test (PROMENADE_PAUSE_AFTER_STEP)", step)
            await asyncio.Event().wait()

    # ---- reads ---------------------------------------------------------------------------------

    async def _next_change(self, deployment_id: str) -> str | None:
        """The deployment's oldest change that has not ended, unless it has not started and its
        environment is frozen: then the deployment waits (unfreezing announces it again)."""
        async with self.sessions() as session:
            row = (
                await session.exec(
                    select(DeploymentChange.id, DeploymentChange.status, Environment.frozen)
                    .join(Deployment, col(Deployment.id) == col(DeploymentChange.deployment_id))
                    .join(Environment, col(Environment.id) == col(Deployment.environment_id))
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
        change_id, status, frozen = row
        if frozen and status is ChangeStatus.QUEUED:
            log.info("change %s waits: its environment is frozen", change_id)
            return None
        return change_id

    @staticmethod
    async def _change(session: AsyncSession, change_id: str) -> DeploymentChange:
        change = await session.get(DeploymentChange, change_id)
        assert change is not None, change_id
        return change

    @staticmethod
    async def _deployment(session: AsyncSession, deployment_id: str) -> Deployment:
        deployment = await session.get(Deployment, deployment_id)
        assert deployment is not None, deployment_id
        return deployment

    @staticmethod
    async def _revision(
        session: AsyncSession, deployment_id: str, revision: int | None
    ) -> DeploymentRevision:
        row = (
            await session.exec(
                select(DeploymentRevision).where(
                    DeploymentRevision.deployment_id == deployment_id,
                    DeploymentRevision.revision == revision,
                )
            )
        ).first()
        if row is None:
            raise ChangeRefused(f"revision {revision} does not exist")
        return row
