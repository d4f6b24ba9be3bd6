"""Dependencies between integrations: an integration may depend on others of its organization
(cycles refused). A release promotes its members in their order (``release_order``)."""

from __future__ import annotations

from collections.abc import Sequence
from graphlib import CycleError, TopologicalSorter

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Integration, IntegrationDependency, User
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.errors import InvalidInput, NotFound

MAX_DEPENDENCIES = 50


async def set_dependencies(
    session: AsyncSession, *, actor: User, integration_id: str, depends_on: Sequence[str]
) -> Integration:
    """What the integration depends on, replacing what it did."""
    integration = await get_owned(
        session, Integration, integration_id, actor=actor, permission=Permission.DEVELOP
    )
    wanted = list(dict.fromkeys(depends_on))
    if len(wanted) > MAX_DEPENDENCIES:
        raise InvalidInput(
            f"an integration depends on at most {MAX_DEPENDENCIES} others", field="dependsOn"
        )
    found = {
        row.id: row
        for row in (
            await session.exec(select(Integration).where(col(Integration.id).in_(wanted)))
        ).all()
        if row.organization_id == integration.organization_id
    }
    for other in wanted:
        if other not in found:
            raise NotFound(f"no integration with id {other}", id=other)
    if integration.id in wanted:
        raise InvalidInput("an integration does not depend on itself", field="dependsOn")
    graph = await dependency_graph(session, integration.organization_id)
    graph[integration.id] = set(wanted)
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as cycle:
        names = await _names(session, cycle.args[1])
        raise InvalidInput(
            f"that would make a cycle: {' -> '.join(names)}", field="dependsOn"
        ) from None
    existing = (
        await session.exec(
            select(IntegrationDependency).where(
                IntegrationDependency.integration_id == integration.id
            )
        )
    ).all()
    for row in existing:
        await session.delete(row)
    await session.flush()
    for other in wanted:
        session.add(IntegrationDependency(integration_id=integration.id, depends_on_id=other))
    audit.record(
        session,
        organization_id=integration.organization_id,
        actor=actor,
        action="integration.dependencies_set",
        subject_id=integration.id,
        depends_on=wanted,
    )
    await session.flush()
    return integration


async def dependency_graph(session: AsyncSession, organization_id: str) -> dict[str, set[str]]:
    """Each integration of the organization with a dependency: what it depends on."""
    rows = await session.exec(
        select(IntegrationDependency)
        .join(Integration, col(Integration.id) == col(IntegrationDependency.integration_id))
        .where(Integration.organization_id == organization_id)
    )
    graph: dict[str, set[str]] = {}
    for row in rows.all():
        graph.setdefault(row.integration_id, set()).add(row.depends_on_id)
    return graph


async def release_order(
    session: AsyncSession, organization_id: str, integration_ids: Sequence[str]
) -> list[str]:
    """The integrations in the order a release promotes them: each after those of the set it
    depends on (directly or through integrations outside the set); otherwise as given."""
    graph = await dependency_graph(session, organization_id)
    members = set(integration_ids)
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for integration_id in integration_ids:
        sorter.add(integration_id, *(_reached(graph, integration_id) & members))
    try:
        sorter.prepare()
    except CycleError:
        # Two edits at once may each have passed the check: say so, as that check does.
        raise InvalidInput(
            "the members' dependencies make a cycle: change them first", field="members"
        ) from None
    order: list[str] = []
    position = {integration_id: i for i, integration_id in enumerate(integration_ids)}
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return order


def _reached(graph: dict[str, set[str]], start: str) -> set[str]:
    """Everything ``start`` depends on, through any number of steps."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


async def _names(session: AsyncSession, ids: Sequence[str]) -> list[str]:
    rows = {
        row.id: row.name
        for row in (
            await session.exec(select(Integration).where(col(Integration.id).in_(list(ids))))
        ).all()
    }
    return [rows.get(i, i) for i in ids]
