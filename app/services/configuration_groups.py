"""Configuration groups: an organization's set of keys with a value per environment (secrets
among them, encrypted and write-only like the rest), linked to integrations.

A deployment's effective configuration is its own values over the values of the groups linked
to its integration, for its environment (``effective_configuration``): a group linked in
ENVIRONMENT mode gives each key as a value of its own; one linked in FILE mode gives its keys
together as one TOML file, ``files/groups/<name>.toml``. A change freezes the effective values
into its snapshot, with which of them came from which group (``snapshot_groups``), so that a
rollback restores the deployment's own values and runs the group values it ran then.

Changing a group's values, or linking and unlinking it, changes what the linked deployments
would run: each is marked ``restartRequired`` (its configuration version moves), and with
``restart`` each one running in that environment is restarted through the normal queue, and
through a request for review where an approval policy protects the environment.

ADMINs edit groups, and members of the role a group names as its editors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import tomli_w
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ConfigurationGroup,
    ConfigurationGroupLink,
    ConfigurationGroupValue,
    Deployment,
    DeploymentChange,
    DeploymentStatus,
    Environment,
    GroupLinkMode,
    Integration,
    Organization,
    Promotion,
    Role,
    User,
)
from app.models.base import utcnow
from app.services import audit
from app.services.auth import Permission, authorize, get_owned, role_in
from app.services.configuration import (
    ConfigEntry,
    bump_config_version,
    group_file_key,
    group_values_unopened,
    linked_groups,
    parse_value,
    plaintext_values,
    schema_of,
)
from app.services.errors import Conflict, Forbidden, InvalidInput, NotFound

NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
MAX_KEYS = 100
MAX_VALUE = 64 * 1024


@dataclass(frozen=True)
class GroupKey:
    key: str
    secret: bool = False


def keys_of(group: ConfigurationGroup) -> list[GroupKey]:
    return [GroupKey(key=k["key"], secret=bool(k.get("secret"))) for k in group.keys]


# ---- who edits ----------------------------------------------------------------------------


async def _editable(session: AsyncSession, *, actor: User, group_id: str) -> ConfigurationGroup:
    """The group, if the actor may edit it: an ADMIN, or a member of its editor role."""
    group = await get_owned(session, ConfigurationGroup, group_id, actor=actor)
    role = await role_in(session, user_id=actor.id, organization_id=group.organization_id)
    if role is not Role.ADMIN and (group.editor_role is None or role is not group.editor_role):
        editors = "ADMINs" + (f" and {group.editor_role.value}s" if group.editor_role else "")
        raise Forbidden(f"only {editors} edit the configuration group {group.name}")
    return group


# ---- the groups ---------------------------------------------------------------------------


def _checked_keys(keys: Sequence[GroupKey]) -> list[dict[str, Any]]:
    if not 1 <= len(keys) <= MAX_KEYS:
        raise InvalidInput(f"a group has from 1 to {MAX_KEYS} keys", field="keys")
    seen: set[str] = set()
    for index, key in enumerate(keys):
        if not KEY.fullmatch(key.key):
            raise InvalidInput(
                f"{key.key!r} is not a key: letters, digits and _, not starting with a digit",
                field=f"keys[{index}].key",
            )
        if key.key in seen:
            raise InvalidInput(f"{key.key!r} is given twice", field=f"keys[{index}].key")
        seen.add(key.key)
    return [{"key": key.key, "secret": key.secret} for key in keys]


async def create_group(
    session: AsyncSession,
    *,
    actor: User,
    organization_id: str,
    name: str,
    keys: Sequence[GroupKey],
    description: str | None = None,
    editor_role: Role | None = None,
) -> ConfigurationGroup:
    await authorize(
        session,
        actor=actor,
        organization_id=organization_id,
        permission=Permission.ADMINISTER,
        subject_id=organization_id,
    )
    if await session.get(Organization, organization_id) is None:
        raise NotFound(f"no organization with id {organization_id}", id=organization_id)
    if not NAME.fullmatch(name):
        raise InvalidInput(
            "a group's name has 1 to 63 lowercase letters, digits and inner hyphens",
            field="name",
        )
    if description is not None and len(description) > 2000:
        raise InvalidInput("description has at most 2000 characters", field="description")
    if editor_role is Role.VIEWER:
        raise InvalidInput("VIEWERs only read: name another editor role", field="editorRole")
    checked = _checked_keys(keys)
    taken = (
        await session.exec(
            select(ConfigurationGroup.id).where(
                ConfigurationGroup.organization_id == organization_id,
                ConfigurationGroup.name == name,
            )
        )
    ).first()
    if taken is not None:
        raise Conflict(f"the organization has a configuration group named {name} already")
    group = ConfigurationGroup(
        organization_id=organization_id,
        name=name,
        description=description,
        keys=checked,
        editor_role=editor_role,
    )
    session.add(group)
    await session.flush()
    audit.record(
        session,
        organization_id=organization_id,
        actor=actor,
        action="configuration_group.created",
        subject_id=group.id,
        name=name,
        keys=[k["key"] for k in checked],
        editor_role=editor_role.value if editor_role else None,
    )
    return group


async def delete_group(session: AsyncSession, *, actor: User, group_id: str) -> str:
    group = await get_owned(
        session, ConfigurationGroup, group_id, actor=actor, permission=Permission.ADMINISTER
    )
    await _mark_linked(session, group, environment_id=None)
    for row in [
        *(await _links(session, group.id)),
        *(
            await session.exec(
                select(ConfigurationGroupValue).where(ConfigurationGroupValue.group_id == group.id)
            )
        ).all(),
    ]:
        await session.delete(row)
    await session.delete(group)
    audit.record(
        session,
        organization_id=group.organization_id,
        actor=actor,
        action="configuration_group.deleted",
        subject_id=group.id,
        name=group.name,
    )
    await session.flush()
    return group.id


# ---- values -------------------------------------------------------------------------------


@dataclass
class ValuesSet:
    """What ``set_group_values`` did: the group, and with ``restart`` the deployments queued
    for a restart and the requests filed for review instead."""

    group: ConfigurationGroup
    restarted: list[Deployment] = field(default_factory=list)
    requests: list[Promotion] = field(default_factory=list)


async def set_group_values(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    group_id: str,
    environment_id: str,
    entries: Sequence[ConfigEntry],
    restart: bool = False,
) -> ValuesSet:
    """Set or remove the group's values of one environment (a None value removes one). Every
    deployment of a linked integration there is marked restartRequired; with ``restart``,
    each one that runs is restarted with them (or a request for it filed, where the
    environment is protected). A frozen environment's deployments are not restarted: the
    freeze holds, and they run the values at their next change."""
    group = await _editable(session, actor=actor, group_id=group_id)
    environment = await session.get(Environment, environment_id)
    if environment is None or environment.organization_id != group.organization_id:
        raise NotFound(f"no environment with id {environment_id}", id=environment_id)
    if not entries:
        raise InvalidInput("entries must not be empty", field="entries")
    declared = {key.key: key for key in keys_of(group)}
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"entries[{index}]"
        if entry.key not in declared:
            raise InvalidInput(f"{entry.key!r} is not a key of the group", field=f"{where}.key")
        if entry.key in seen:
            raise InvalidInput(f"{entry.key!r} is given twice", field=f"{where}.key")
        seen.add(entry.key)
        if entry.value is not None and len(entry.value) > MAX_VALUE:
            raise InvalidInput(
                f"a value has at most {MAX_VALUE} characters", field=f"{where}.value"
            )
    # A key a linked integration's schema declares takes a value of its type there.
    for link, integration in await _linked_integrations(session, group.id):
        if link.mode is not GroupLinkMode.ENVIRONMENT:
            continue
        schema = schema_of(integration)
        for index, entry in enumerate(entries):
            if entry.value is not None and entry.key in schema:
                parse_value(schema[entry.key], entry.value, field=f"entries[{index}].value")
    stored = {
        row.key: row
        for row in (
            await session.exec(
                select(ConfigurationGroupValue).where(
                    ConfigurationGroupValue.group_id == group.id,
                    ConfigurationGroupValue.environment_id == environment.id,
                )
            )
        ).all()
    }
    now = utcnow()
    for entry in entries:
        key = declared[entry.key]
        row = stored.get(entry.key)
        if entry.value is None:
            if row is not None:
                await session.delete(row)
            continue
        sealed = box.seal(entry.value) if key.secret else entry.value
        if row is None:
            row = ConfigurationGroupValue(
                group_id=group.id, environment_id=environment.id, key=key.key, value=sealed
            )
        row.value, row.secret, row.updated_at = sealed, key.secret, now
        session.add(row)
    group.updated_at = now
    session.add(group)
    await session.flush()
    linked = await _mark_linked(session, group, environment_id=environment.id)
    audit.record(
        session,
        organization_id=group.organization_id,
        actor=actor,
        action="configuration_group.values_set",
        subject_id=group.id,
        environment_id=environment.id,
        keys_set=[e.key for e in entries if e.value is not None],
        keys_removed=[e.key for e in entries if e.value is None],
        restart=restart,
    )
    result = ValuesSet(group=group)
    if restart and not environment.frozen:
        await _restart_linked(session, actor=actor, box=box, deployments=linked, result=result)
    return result


async def _restart_linked(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    deployments: Iterable[Deployment],
    result: ValuesSet,
) -> None:
    # Imported here: changes.py reads effective configurations from this module.
    from app.services.changes import restart_for_configuration

    for deployment in deployments:
        if deployment.status not in (DeploymentStatus.ACTIVE, DeploymentStatus.ERROR):
            continue
        if deployment.build_id is None:
            continue
        outcome = await restart_for_configuration(
            session, actor=actor, box=box, deployment=deployment
        )
        if outcome is None:
            result.restarted.append(deployment)
        else:
            result.requests.append(outcome)


# ---- links --------------------------------------------------------------------------------


async def link_group(
    session: AsyncSession,
    *,
    actor: User,
    group_id: str,
    integration_id: str,
    mode: GroupLinkMode = GroupLinkMode.ENVIRONMENT,
) -> ConfigurationGroupLink:
    group = await _editable(session, actor=actor, group_id=group_id)
    integration = await session.get(Integration, integration_id)
    if integration is None or integration.organization_id != group.organization_id:
        raise NotFound(f"no integration with id {integration_id}", id=integration_id)
    links = await _links_of_integration(session, integration.id)
    if any(link.group_id == group.id for link, _ in links):
        raise Conflict(f"the group {group.name} is linked to {integration.name} already")
    if mode is GroupLinkMode.ENVIRONMENT:
        schema = schema_of(integration)
        for key in keys_of(group):
            declared = schema.get(key.key)
            if declared is not None and declared.secret != key.secret:
                raise InvalidInput(
                    f"{key.key} is {'secret' if declared.secret else 'not secret'} in "
                    f"{integration.name}'s config schema but "
                    f"{'secret' if key.secret else 'not secret'} in the group",
                    field="groupId",
                )
        for link, other in links:
            if link.mode is not GroupLinkMode.ENVIRONMENT:
                continue
            shared = {k.key for k in keys_of(group)} & {k.key for k in keys_of(other)}
            if shared:
                raise Conflict(
                    f"{', '.join(sorted(shared))} is also in the group {other.name}, linked "
                    f"to {integration.name}: a key comes from one group"
                )
        # What the group holds already must be of the schema's types (secrets are checked
        # as they are set: they are not opened here).
        for row in (
            await session.exec(
                select(ConfigurationGroupValue).where(
                    ConfigurationGroupValue.group_id == group.id,
                    col(ConfigurationGroupValue.secret).is_(False),
                )
            )
        ).all():
            if row.key in schema:
                parse_value(schema[row.key], row.value, field="groupId")
    link = ConfigurationGroupLink(group_id=group.id, integration_id=integration.id, mode=mode)
    session.add(link)
    await session.flush()
    await _mark_deployments(session, await _deployments_of(session, [integration.id], None))
    audit.record(
        session,
        organization_id=group.organization_id,
        actor=actor,
        action="configuration_group.linked",
        subject_id=group.id,
        integration_id=integration.id,
        mode=mode.value,
    )
    return link


async def unlink_group(
    session: AsyncSession, *, actor: User, group_id: str, integration_id: str
) -> ConfigurationGroup:
    group = await _editable(session, actor=actor, group_id=group_id)
    link = (
        await session.exec(
            select(ConfigurationGroupLink).where(
                ConfigurationGroupLink.group_id == group.id,
                ConfigurationGroupLink.integration_id == integration_id,
            )
        )
    ).first()
    if link is None:
        raise NotFound(
            f"the group {group.name} is not linked to an integration with id {integration_id}",
            id=integration_id,
        )
    await session.delete(link)
    await session.flush()
    await _mark_deployments(session, await _deployments_of(session, [integration_id], None))
    audit.record(
        session,
        organization_id=group.organization_id,
        actor=actor,
        action="configuration_group.unlinked",
        subject_id=group.id,
        integration_id=integration_id,
    )
    return group


async def _links(session: AsyncSession, group_id: str) -> list[ConfigurationGroupLink]:
    return list(
        (
            await session.exec(
                select(ConfigurationGroupLink).where(ConfigurationGroupLink.group_id == group_id)
            )
        ).all()
    )


async def _linked_integrations(
    session: AsyncSession, group_id: str
) -> list[tuple[ConfigurationGroupLink, Integration]]:
    rows = await session.exec(
        select(ConfigurationGroupLink, Integration)
        .join(Integration, col(Integration.id) == col(ConfigurationGroupLink.integration_id))
        .where(ConfigurationGroupLink.group_id == group_id)
    )
    return list(rows.all())


async def _links_of_integration(
    session: AsyncSession, integration_id: str
) -> list[tuple[ConfigurationGroupLink, ConfigurationGroup]]:
    rows = await session.exec(
        select(ConfigurationGroupLink, ConfigurationGroup)
        .join(
            ConfigurationGroup,
            col(ConfigurationGroup.id) == col(ConfigurationGroupLink.group_id),
        )
        .where(ConfigurationGroupLink.integration_id == integration_id)
        .order_by(col(ConfigurationGroup.name))
    )
    return list(rows.all())


async def _deployments_of(
    session: AsyncSession, integration_ids: Sequence[str], environment_id: str | None
) -> list[Deployment]:
    if not integration_ids:
        return []
    query = select(Deployment).where(col(Deployment.integration_id).in_(integration_ids))
    if environment_id is not None:
        query = query.where(Deployment.environment_id == environment_id)
    return list((await session.exec(query.order_by(col(Deployment.id)))).all())


async def _mark_linked(
    session: AsyncSession, group: ConfigurationGroup, *, environment_id: str | None
) -> list[Deployment]:
    """Every deployment of a linked integration (in the environment, if given) marked
    restartRequired: its configuration version moves, as when its own values change."""
    integration_ids = [link.integration_id for link in await _links(session, group.id)]
    deployments = await _deployments_of(session, integration_ids, environment_id)
    await _mark_deployments(session, deployments)
    return deployments


async def _mark_deployments(session: AsyncSession, deployments: Iterable[Deployment]) -> None:
    for deployment in deployments:
        await bump_config_version(session, deployment)


# ---- what a deployment runs ----------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """A deployment's effective configuration: plaintext values (secrets opened), and which
    keys came from which group (``{key: {"group", "secret", "file"}}``)."""

    values: dict[str, str]
    groups: dict[str, dict[str, Any]]

    def own(self) -> dict[str, str]:
        return {k: v for k, v in self.values.items() if k not in self.groups}


async def group_values(session: AsyncSession, box: SecretBox, deployment: Deployment) -> Effective:
    """The values the groups linked to the deployment's integration give in its environment,
    secrets opened."""
    values: dict[str, str] = {}
    layout: dict[str, dict[str, Any]] = {}
    for linked in (await linked_groups(session, [deployment]))[deployment.id]:
        rows, name = linked.rows, linked.group.name
        opened = {row.key: box.open(row.value) if row.secret else row.value for row in rows}
        if linked.mode is GroupLinkMode.FILE:
            path = group_file_key(name)
            values[path] = tomli_w.dumps(opened)
            layout[path] = {
                "group": name,
                "secret": any(row.secret for row in rows),
                "file": True,
                # Masked one by one in the instance's output, as well as the file as a whole.
                "secret_keys": sorted(row.key for row in rows if row.secret),
            }
            continue
        for row in rows:
            values[row.key] = opened[row.key]
            layout[row.key] = {"group": name, "secret": row.secret, "file": False}
    return Effective(values=values, groups=layout)


async def effective_configuration(
    session: AsyncSession, box: SecretBox, deployment: Deployment
) -> Effective:
    """The deployment's own values over its linked groups' values for its environment."""
    groups = await group_values(session, box, deployment)
    own = await plaintext_values(session, box=box, deployment_id=deployment.id)
    return Effective(
        values={**groups.values, **own},
        groups={k: v for k, v in groups.groups.items() if k not in own},
    )


async def group_keys(
    session: AsyncSession, deployment_ids: Sequence[str]
) -> dict[str, frozenset[str]]:
    """The keys each deployment's linked groups set in its environment as values of their own
    (what counts as set for the required-configuration checks; nothing is decrypted), by
    deployment id, in one statement."""
    rows = await session.exec(
        select(Deployment.id, ConfigurationGroupValue.key)
        .join(
            ConfigurationGroupLink,
            col(ConfigurationGroupLink.integration_id) == col(Deployment.integration_id),
        )
        .join(
            ConfigurationGroupValue,
            (col(ConfigurationGroupValue.group_id) == col(ConfigurationGroupLink.group_id))
            & (col(ConfigurationGroupValue.environment_id) == col(Deployment.environment_id)),
        )
        .where(
            col(Deployment.id).in_(list(deployment_ids)),
            col(ConfigurationGroupLink.mode) == GroupLinkMode.ENVIRONMENT,
        )
    )
    found: dict[str, set[str]] = {}
    for deployment_id, key in rows.all():
        found.setdefault(deployment_id, set()).add(key)
    return {i: frozenset(found.get(i, ())) for i in deployment_ids}


async def plain_group_keys(session: AsyncSession, deployment: Deployment) -> set[str]:
    """The keys outside the deployment's schema that its configuration groups give, or gave
    what runs now, as plain (not secret) values: in a plan, every other such key is masked."""
    now = (await group_values_unopened(session, [deployment]))[deployment.id]
    plain = {key for key, value in now.items() if not value.secret}
    if deployment.running_change_id is not None:
        change = await session.get(DeploymentChange, deployment.running_change_id)
        running = (change.snapshot_groups if change is not None else None) or {}
        plain |= {key for key, layout in running.items() if not layout.get("secret")}
    return plain
