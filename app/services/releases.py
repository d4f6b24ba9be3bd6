"""Releases: several integrations' builds promoted together from one environment to the next,
in the order of their dependencies (dependencies.py), so that an environment is never left
half-released.

- ``plan_release``: one plan for the whole set, each member's promotion plan in release order.
- ``create_release``: refused with every member's blockers, or made. Into an environment with
  an approval policy it files one request for the whole set (a Promotion of kind RELEASE); the
  release runs once the request is approved, and ends with it when it is rejected, cancelled or
  expires.
- A running release promotes its members one at a time, each through the normal lifecycle (a
  promotion of its own, with ``release_id``): the next starts when the one before SUCCEEDED,
  and the release SUCCEEDED when the last did. A member runs only with the target configuration
  the release was planned (and reviewed) with; a freeze or a closed deployment window holds it
  back; a policy added since the release started fails the release. When one fails (or cannot
  start), the release FAILED and the members it had already changed are rolled back to the
  revision they ran before (a member the release deployed for the first time is suspended),
  unless the release keeps them (``keep_on_failure``); those changes wait for a freeze like any
  other, and none is queued behind someone else's change.

``advance`` moves a release on; the release sweep (app/sweeps.py) runs it in the API process,
for every release that waits for something, so that no worker needs to know of releases and a
worker killed anywhere changes nothing. Each release is held while it moves: several API
processes move it once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ApprovalPolicy,
    ChangeKind,
    Deployment,
    DeploymentRevision,
    DeploymentStatus,
    Environment,
    Integration,
    Promotion,
    PromotionStatus,
    Release,
    ReleaseEvent,
    ReleaseStatus,
    RequestKind,
    User,
)
from app.models.base import utcnow
from app.services import audit, change_requests
from app.services.approval_policies import policy_of
from app.services.auth import get_owned
from app.services.change_queue import pending_change, queue_change
from app.services.configuration import ConfigChangeKind, ConfigEntry
from app.services.dependencies import release_order
from app.services.errors import (
    Blocker,
    DomainError,
    InvalidInput,
    MissingConfiguration,
    PromotionBlocked,
)
from app.services.outbox import enqueue
from app.services.promotions import Plan, PromotionRequest, plan_promotion, promote
from app.services.windows import earliest_start

MAX_MEMBERS = 20
WAITING = (ReleaseStatus.PENDING_APPROVAL, ReleaseStatus.RUNNING)
# What a release's request ending without approval makes of the release.
REQUEST_ENDINGS = {
    PromotionStatus.REJECTED: ReleaseStatus.REJECTED,
    PromotionStatus.CANCELLED: ReleaseStatus.CANCELLED,
    PromotionStatus.EXPIRED: ReleaseStatus.EXPIRED,
}


def release_routing_key(release_id: str) -> str:
    return f"release.{release_id}"


@dataclass(frozen=True)
class MemberRequest:
    integration_id: str
    overrides: Sequence[ConfigEntry] = ()


@dataclass(frozen=True)
class ReleaseRequest:
    name: str
    source_environment_id: str
    members: Sequence[MemberRequest]
    target_environment_id: str | None = None
    keep_on_failure: bool = False
    message: str | None = None


@dataclass(frozen=True)
class ReleasePlan:
    """Each member's promotion plan, in the order the release runs them."""

    members: list[Plan]
    policy: ApprovalPolicy | None

    @property
    def blockers(self) -> list[Blocker]:
        found = {b for plan in self.members for b in plan.blockers}
        return [b for b in Blocker if b in found]

    @property
    def target(self) -> Environment:
        return self.members[0].target

    @property
    def source(self) -> Environment:
        return self.members[0].source


async def plan_release(
    session: AsyncSession, *, actor: User, box: SecretBox, request: ReleaseRequest
) -> ReleasePlan:
    """Every check of ``create_release``, without changing anything."""
    name = request.name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("a release's name has 1 to 200 characters", field="name")
    if not 1 <= len(request.members) <= MAX_MEMBERS:
        raise InvalidInput(f"a release has from 1 to {MAX_MEMBERS} members", field="members")
    ids = [member.integration_id for member in request.members]
    for index, integration_id in enumerate(ids):
        if integration_id in ids[:index]:
            raise InvalidInput(
                "an integration is a member once", field=f"members[{index}].integrationId"
            )
    integrations = [await get_owned(session, Integration, i, actor=actor) for i in ids]
    organizations = {integration.organization_id for integration in integrations}
    if len(organizations) > 1:
        raise InvalidInput("a release's members are of one organization", field="members")
    by_id = {member.integration_id: member for member in request.members}
    plans = []
    for integration_id in await release_order(session, organizations.pop(), ids):
        member = by_id[integration_id]
        plans.append(
            await plan_promotion(
                session,
                actor=actor,
                box=box,
                request=PromotionRequest(
                    integration_id=integration_id,
                    source_environment_id=request.source_environment_id,
                    target_environment_id=request.target_environment_id,
                    overrides=list(member.overrides),
                ),
            )
        )
    targets = {plan.target.id for plan in plans}
    if len(targets) > 1:
        raise InvalidInput(
            "the members' pipelines lead to different environments after the source: "
            "give targetEnvironmentId",
            field="targetEnvironmentId",
        )
    return ReleasePlan(members=plans, policy=plans[0].policy)


async def create_release(
    session: AsyncSession, *, actor: User, box: SecretBox, request: ReleaseRequest
) -> Release:
    """The release, started, or waiting for its one review; refused (nothing written) when a
    member may not be promoted, naming each member's blockers."""
    plan = await plan_release(session, actor=actor, box=box, request=request)
    hard = [b for b in plan.blockers if b is not Blocker.MISSING_CONFIGURATION]
    if hard:
        blocked = [
            f"{member.integration.name}: {', '.join(b.value for b in member.blockers)}"
            for member in plan.members
            if member.blockers
        ]
        raise PromotionBlocked(
            "the release cannot be promoted: " + "; ".join(blocked), blockers=plan.blockers
        )
    for member in plan.members:
        if member.missing:
            raise MissingConfiguration(
                environment_id=member.target.id,
                environment_name=f"{member.target.name} ({member.integration.name})",
                keys=member.missing,
            )
    if request.message is not None and len(request.message) > 2000:
        raise InvalidInput("message must be at most 2000 characters", field="message")
    members = []
    for member in plan.members:
        assert member.build is not None  # the source is ACTIVE
        members.append(
            {
                "integration_id": member.integration.id,
                "build_id": member.build.id,
                # What the plan (and, where protected, the reviewers) saw of the target's
                # configuration: the member runs only if nothing was stored there since.
                "config_version": member.target_deployment.config_version,
            }
        )
    release = Release(
        organization_id=plan.target.organization_id,
        name=request.name.strip(),
        source_environment_id=plan.source.id,
        target_environment_id=plan.target.id,
        status=ReleaseStatus.PENDING_APPROVAL if plan.policy else ReleaseStatus.RUNNING,
        members=members,
        overrides_sealed=box.seal_json(
            {
                member.integration.id: [dataclasses.asdict(e) for e in member.overrides]
                for member in plan.members
            }
        ),
        keep_on_failure=request.keep_on_failure,
        message=request.message,
        requested_by_id=actor.id,
    )
    session.add(release)
    await session.flush()
    versions = ", ".join(
        f"{m.integration.name} {m.build.version}" for m in plan.members if m.build is not None
    )
    audit.record(
        session,
        organization_id=release.organization_id,
        actor=actor,
        action="release.requested",
        subject_id=release.id,
        name=release.name,
        source=plan.source.name,
        target=plan.target.name,
        members=[m["integration_id"] for m in members],
    )
    detail = f"{versions} from {plan.source.name} to {plan.target.name}"
    if plan.policy is not None:
        await _record(session, release, detail=f"{detail}: waiting for reviews")
        await _file_request(session, box, release, plan, versions)
        return release
    await _record(session, release, detail=detail)
    await _start_next(session, box, release)
    return release


async def _file_request(
    session: AsyncSession, box: SecretBox, release: Release, plan: ReleasePlan, versions: str
) -> None:
    """The release's one request for review, under the target's policy. It stands for the
    whole set: its integration and build are the first member's, its plan every member's."""
    first = plan.members[0]
    assert first.build is not None and plan.policy is not None
    request = Promotion(
        organization_id=release.organization_id,
        integration_id=first.integration.id,
        build_id=first.build.id,
        source_environment_id=release.source_environment_id,
        target_environment_id=release.target_environment_id,
        deployment_id=first.target_deployment.id,
        status=PromotionStatus.PENDING_APPROVAL,
        kind=RequestKind.RELEASE,
        message=f"release {release.name} ({versions})"
        + (f": {release.message}" if release.message else ""),
        requested_by_id=release.requested_by_id,
        release_id=release.id,
        # Each member's changes, its keys named "<integration>/<KEY>", in the order they run.
        overrides_sealed=box.seal_json(
            {
                "changes": [
                    dataclasses.asdict(dataclasses.replace(c, key=f"{m.integration.name}/{c.key}"))
                    for m in plan.members
                    for c in m.changes
                    if c.kind is not ConfigChangeKind.UNCHANGED
                ]
            }
        ),
    )
    session.add(request)
    await session.flush()
    await change_requests.file_request(session, promotion=request, policy=plan.policy)


# ---- moving on ----------------------------------------------------------------------------


async def waiting_releases(session: AsyncSession) -> list[str]:
    """The ids of the releases that wait for a review or for a member (the sweep's work)."""
    rows = await session.exec(
        select(Release.id)
        .where(col(Release.status).in_(list(WAITING)))
        .order_by(col(Release.created_at))
    )
    return list(rows.all())


async def advance(session: AsyncSession, *, box: SecretBox, release_id: str) -> bool:
    """Move the release on if what it waits for happened: its request decided, or its running
    member ended. True when it moved."""
    release = await session.get(Release, release_id)
    if release is None or release.status not in WAITING:
        return False
    if release.status is ReleaseStatus.PENDING_APPROVAL:
        request = await _request_of(session, release)
        if request is None or request.status is PromotionStatus.PENDING_APPROVAL:
            return False
        if not await _hold(session, release):
            return False
        if request.status is not PromotionStatus.SUCCEEDED:
            ending = REQUEST_ENDINGS.get(request.status, ReleaseStatus.FAILED)
            release.error = request.error or f"its request ended {request.status.value}"
            await _move(session, release, ending, detail=release.error)
            return True
        await _move(session, release, ReleaseStatus.RUNNING, detail="approved")
        await _start_next(session, box, release)
        return True
    current = await _member_promotion(session, release, release.started - 1)
    if current is not None and not current.status.is_final:
        return False
    if not await _hold(session, release):
        return False
    if current is None or current.status is PromotionStatus.SUCCEEDED:
        await _start_next(session, box, release)
        return True
    name = await _integration_name(session, current.integration_id)
    await _fail(
        session,
        release,
        f"{name} {current.status.value}" + (f": {current.error}" if current.error else ""),
    )
    return True


async def _start_next(session: AsyncSession, box: SecretBox, release: Release) -> None:
    """Promote the next member (as the release's requester), or end the release SUCCEEDED
    when none is left; a member that cannot start fails the release."""
    if release.started >= len(release.members):
        await _move(session, release, ReleaseStatus.SUCCEEDED, detail="every member succeeded")
        return
    member = release.members[release.started]
    actor = await session.get(User, release.requested_by_id)
    assert actor is not None
    overrides = box.open_json(release.overrides_sealed).get(member["integration_id"], [])
    name = await _integration_name(session, member["integration_id"])
    target = await session.get(Environment, release.target_environment_id)
    assert target is not None
    # A freeze, or a time outside the target's deployment windows, holds the next member
    # back: the sweep starts it once the target thaws or its window opens.
    if target.frozen or earliest_start(target.deployment_windows, None, utcnow()) is not None:
        return
    if await policy_of(session, target.id) is not None and not await _reviewed(session, release):
        await _fail(
            session,
            release,
            f"{target.name} is protected by an approval policy since the release started: "
            f"{name} would run without a review; make a new release",
        )
        return
    try:
        promotion = await promote(
            session,
            actor=actor,
            box=box,
            request=PromotionRequest(
                integration_id=member["integration_id"],
                source_environment_id=release.source_environment_id,
                target_environment_id=release.target_environment_id,
                overrides=[ConfigEntry(**entry) for entry in overrides],
                message=f"release {release.name}",
            ),
            release=release,
            release_build_id=member["build_id"],
            release_config_version=member.get("config_version"),
        )
    except DomainError as refused:
        await _fail(session, release, f"{name} could not start: {refused}")
        return
    release.started += 1
    session.add(release)
    await _record(session, release, detail=f"{name}: promotion {promotion.id}")


async def _fail(session: AsyncSession, release: Release, reason: str) -> None:
    """The release FAILED; the members it changed are rolled back unless it keeps them."""
    rolled_back: list[str] = []
    if not release.keep_on_failure:
        for index in reversed(range(release.started)):
            promotion = await _member_promotion(session, release, index)
            if promotion is None or promotion.status is not PromotionStatus.SUCCEEDED:
                continue
            if await _roll_back(session, release, promotion, reason):
                rolled_back.append(promotion.integration_id)
    release.rolled_back = rolled_back
    names = [await _integration_name(session, i) for i in rolled_back]
    release.error = reason + (f"; rolled back: {', '.join(names)}" if names else "")
    await _move(session, release, ReleaseStatus.FAILED, detail=release.error)


async def _roll_back(
    session: AsyncSession, release: Release, promotion: Promotion, reason: str
) -> bool:
    """Queue what restores the member's deployment to what ran before the release changed it:
    a ROLLBACK to the revision before, or for a first revision a SUSPEND. Nothing when the
    deployment was changed again since (what runs now is not the release's)."""
    deployment = await session.get(Deployment, promotion.deployment_id)
    assert deployment is not None
    revision = (
        await session.exec(
            select(DeploymentRevision).where(DeploymentRevision.promotion_id == promotion.id)
        )
    ).first()
    if revision is None or deployment.revision != revision.revision:
        return False
    if await pending_change(session, deployment.id) is not None:
        # Someone else's change waits to run there: undoing the release's would undo theirs.
        return False
    previous = (
        await session.exec(
            select(DeploymentRevision).where(
                DeploymentRevision.deployment_id == deployment.id,
                DeploymentRevision.revision == revision.revision - 1,
            )
        )
    ).first()
    if previous is None:
        if deployment.status is not DeploymentStatus.ACTIVE:
            return False
        change = await queue_change(
            session,
            deployment=deployment,
            kind=ChangeKind.SUSPEND,
            actor=None,
            detail=f"release {release.name} failed ({reason[:200]}): suspend queued",
        )
    else:
        change = await queue_change(
            session,
            deployment=deployment,
            kind=ChangeKind.ROLLBACK,
            actor=None,
            detail=f"release {release.name} failed ({reason[:200]}): rollback to revision "
            f"{previous.revision} queued",
            build_id=previous.build_id,
            rollback_to_revision=previous.revision,
        )
    # No reason on it: a freeze holds it back as any change asked for (a change with a reason
    # is the platform's own restoration after a failed verification, which passes a freeze).
    return change is not None


# ---- rows -----------------------------------------------------------------------------------


async def _hold(session: AsyncSession, release: Release) -> bool:
    """Lock the release's row for the transaction if it is as read (status, members started):
    two sweeps move it once. False when it moved meanwhile."""
    held = await session.exec(
        update(Release)
        .where(
            col(Release.id) == release.id,
            col(Release.status) == release.status,
            col(Release.started) == release.started,
        )
        .values(status=release.status)
    )
    if held.rowcount:
        return True
    await session.refresh(release)
    return False


async def _reviewed(session: AsyncSession, release: Release) -> bool:
    """Whether the release's one request was approved."""
    request = await _request_of(session, release)
    return request is not None and request.status is PromotionStatus.SUCCEEDED


async def _request_of(session: AsyncSession, release: Release) -> Promotion | None:
    return (
        await session.exec(
            select(Promotion).where(
                Promotion.release_id == release.id, Promotion.kind == RequestKind.RELEASE
            )
        )
    ).first()


async def _member_promotion(
    session: AsyncSession, release: Release, index: int
) -> Promotion | None:
    """The promotion of the member at ``index`` (None before it started)."""
    if index < 0 or index >= len(release.members):
        return None
    return (
        await session.exec(
            select(Promotion).where(
                Promotion.release_id == release.id,
                Promotion.kind == RequestKind.PROMOTION,
                Promotion.integration_id == release.members[index]["integration_id"],
            )
        )
    ).first()


async def member_promotions(session: AsyncSession, release: Release) -> dict[str, Promotion]:
    rows = await session.exec(
        select(Promotion).where(
            Promotion.release_id == release.id, Promotion.kind == RequestKind.PROMOTION
        )
    )
    return {row.integration_id: row for row in rows.all()}


async def _integration_name(session: AsyncSession, integration_id: str) -> str:
    integration = await session.get(Integration, integration_id)
    return integration.name if integration is not None else integration_id


async def _move(
    session: AsyncSession, release: Release, status: ReleaseStatus, *, detail: str | None
) -> None:
    release.status = status
    if status.is_final:
        release.finished_at = utcnow()
    session.add(release)
    await _record(session, release, detail=detail)
    if status.is_final:
        audit.record(
            session,
            organization_id=release.organization_id,
            actor=None,
            action=f"release.{status.value.lower()}",
            subject_id=release.id,
            rolled_back=release.rolled_back,
        )


async def _record(session: AsyncSession, release: Release, *, detail: str | None) -> None:
    """The release's event (its status now, and what happened) and word of it to
    ``releaseStatus`` subscribers."""
    event = ReleaseEvent(release_id=release.id, status=release.status, detail=detail)
    session.add(event)
    await session.flush()
    body: dict[str, Any] = {
        "releaseId": release.id,
        "organizationId": release.organization_id,
        "status": release.status.value,
    }
    await enqueue(session, exchange="event", routing_key=release_routing_key(release.id), body=body)
