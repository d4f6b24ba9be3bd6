"""APPLYING_CONFIGURATION -> RESTARTING: what the change sets is written, and the configuration
it will run with is frozen into it (sealed: secrets included). One commit applies it and moves
the change on, so a worker killed before that commit applies it again from scratch, and one
killed after it never applies it twice."""

from __future__ import annotations

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentRevision,
    Integration,
    Promotion,
)
from app.services.configuration import (
    apply_entries,
    effective_values,
    missing_keys,
    replace_values,
    schema_of,
    stored_values,
)
from app.services.configuration_groups import effective_configuration
from app.services.lifecycle import follow_change, move_change
from app.services.promotions import sealed_entries
from workers.metrics import timed_step
from workers.steps.ending import fail
from workers.steps.rows import load_deployment

# Kinds that run the values stored when they run, so values stored after a review (or after
# a protected restart was asked for) would run unseen. A rollback runs a revision's own values,
# but the configuration groups' values as they are now where the revision has none of theirs.
VERSION_CHECKED = frozenset(
    {
        ChangeKind.DEPLOY,
        ChangeKind.PROMOTION,
        ChangeKind.CONFIG_CHANGE,
        ChangeKind.RESTART,
        ChangeKind.ROLLBACK,
    }
)


class ChangeRefused(Exception):
    """The change cannot be applied as asked (required configuration went missing, say)."""


@timed_step(ChangeStatus.APPLYING_CONFIGURATION)
async def apply(session: AsyncSession, box: SecretBox, change: DeploymentChange) -> None:
    """The change applied and RESTARTING, or FAILED when it cannot be applied as asked."""
    try:
        await apply_configuration(session, box, change)
    except ChangeRefused as refusal:
        await fail(session, change, str(refusal))
        return
    move_change(session, change, ChangeStatus.RESTARTING)
    await follow_change(session, change, detail=None)


async def apply_configuration(
    session: AsyncSession, box: SecretBox, change: DeploymentChange
) -> None:
    """Write what the change sets and freeze the configuration it will run with."""
    deployment = await load_deployment(session, change.deployment_id)
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
        overrides, copied = sealed_entries(box, promotion)
        have = await stored_values(session, deployment.id)
        # Copied values fill only keys that are still empty when the promotion runs.
        entries = overrides + [e for e in copied if e.key not in have]
        if entries:
            await apply_entries(
                session,
                box=box,
                integration=integration,
                deployment=deployment,
                entries=entries,
            )
    elif change.kind is ChangeKind.ROLLBACK:
        revision = await _revision(session, deployment.id, change.rollback_to_revision)
        ran: dict[str, str] = box.open_json(revision.snapshot_sealed)
        from_groups = revision.snapshot_groups or {}
        # The deployment's own values become the revision's own; the group values it ran
        # then run again, though the groups may hold others now (shared, they stay as they are).
        await replace_values(
            session,
            box=box,
            integration=integration,
            deployment=deployment,
            values={k: v for k, v in ran.items() if k not in from_groups},
        )
        if from_groups:
            now = await effective_configuration(session, box, deployment)
            change.snapshot_sealed = revision.snapshot_sealed
            change.snapshot_digest = revision.configuration_digest
            change.snapshot_groups = revision.snapshot_groups
            # Where the groups hold other values now, what is stored differs from what runs:
            # restartRequired, as after any change of what is stored (no version is -1).
            change.snapshot_config_version = deployment.config_version if now.values == ran else -1
            if change.build_id is None:
                change.build_id = revision.build_id
            session.add(change)
            return
    if change.kind is ChangeKind.SUSPEND:
        return
    if change.kind is ChangeKind.RESUME:
        current = await _revision(session, deployment.id, deployment.revision)
        change.build_id = current.build_id
        change.snapshot_sealed = current.snapshot_sealed
        change.snapshot_digest = current.configuration_digest
        change.snapshot_groups = current.snapshot_groups
        change.snapshot_config_version = deployment.applied_config_version
        session.add(change)
        return
    effective = await effective_configuration(session, box, deployment)
    values = effective.values
    schema = schema_of(integration)
    missing = missing_keys(schema, values)
    if missing:
        raise ChangeRefused(f"required configuration has no value: {', '.join(missing)}")
    if change.build_id is None:
        change.build_id = deployment.build_id
    change.snapshot_sealed = box.seal_json(values)
    change.snapshot_digest = box.digest(effective_values(schema, values))
    change.snapshot_groups = effective.groups or None
    change.snapshot_config_version = deployment.config_version
    session.add(change)


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
