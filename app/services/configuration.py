"""Configuration: what an integration declares, and each environment's own values.

Values belong to one environment; nothing is inherited. Secret values are sealed with the
installation's key before they are stored and are never read back through the API.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import tomli_w
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.models import (
    ConfigurationGroup,
    ConfigurationGroupLink,
    ConfigurationGroupValue,
    ConfigValue,
    Deployment,
    Environment,
    GroupLinkMode,
    Integration,
    User,
)
from app.models.base import utcnow
from app.services import audit
from app.services.auth import Permission, get_owned
from app.services.errors import InvalidInput, NotFound

ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
FILE_KEY = re.compile(r"^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
MAX_VALUE_LENGTH = 65_536
MAX_FILE_LENGTH = 1_048_576
MAX_SCHEMA_KEYS = 200


class ConfigType(enum.StrEnum):
    STRING = "STRING"
    INT = "INT"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"
    FILE = "FILE"


@dataclass(frozen=True)
class ConfigKey:
    key: str
    type: ConfigType = ConfigType.STRING
    required: bool = True
    secret: bool = False
    default_value: str | None = None
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type.value,
            "required": self.required,
            "secret": self.secret,
            "default_value": self.default_value,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ConfigKey:
        return cls(
            key=data["key"],
            type=ConfigType(data["type"]),
            required=data["required"],
            secret=data["secret"],
            default_value=data.get("default_value"),
            description=data.get("description"),
        )


def parse_value(key: ConfigKey, value: str, *, field: str) -> str:
    """The value in its normal form, if it parses as the key's type."""
    limit = MAX_FILE_LENGTH if key.type is ConfigType.FILE else MAX_VALUE_LENGTH
    if len(value) > limit:
        raise InvalidInput(f"{key.key}: a value is at most {limit} characters", field=field)
    if key.type is ConfigType.INT:
        try:
            return str(int(value.strip()))
        except ValueError:
            raise InvalidInput(f"{key.key} must be an integer", field=field) from None
    if key.type is ConfigType.FLOAT:
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidInput(f"{key.key} must be a number", field=field) from None
        if not math.isfinite(number):
            raise InvalidInput(f"{key.key} must be a finite number", field=field)
        return repr(number)
    if key.type is ConfigType.BOOLEAN:
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise InvalidInput(f"{key.key} must be true or false", field=field)
        return lowered
    return value


def validate_schema(keys: Sequence[ConfigKey]) -> list[ConfigKey]:
    if len(keys) > MAX_SCHEMA_KEYS:
        raise InvalidInput(
            f"a config schema has at most {MAX_SCHEMA_KEYS} keys", field="configSchema"
        )
    seen: set[str] = set()
    result = []
    for index, key in enumerate(keys):
        field = f"configSchema[{index}]"
        pattern = FILE_KEY if key.type is ConfigType.FILE else ENV_KEY
        if not pattern.fullmatch(key.key) or ".." in key.key.split("/"):
            shape = (
                "a file path of letters, digits, '.', '_', '-' and '/'"
                if key.type is ConfigType.FILE
                else "an environment variable name (letters, digits, '_')"
            )
            raise InvalidInput(f"the key {key.key!r} must be {shape}", field=f"{field}.key")
        if key.key in seen:
            raise InvalidInput(f"the key {key.key!r} is declared twice", field=f"{field}.key")
        seen.add(key.key)
        default = key.default_value
        if default is not None:
            if key.secret:
                raise InvalidInput(
                    f"{key.key}: a secret cannot have a default value (it would be readable)",
                    field=f"{field}.defaultValue",
                )
            default = parse_value(key, default, field=f"{field}.defaultValue")
        description = key.description.strip() if key.description else None
        if description is not None and len(description) > 1000:
            raise InvalidInput(
                "description must be at most 1000 characters", field=f"{field}.description"
            )
        result.append(
            ConfigKey(
                key=key.key,
                type=key.type,
                required=key.required,
                secret=key.secret,
                default_value=default,
                description=description or None,
            )
        )
    return result


def schema_of(integration: Integration) -> dict[str, ConfigKey]:
    return {entry["key"]: ConfigKey.from_json(entry) for entry in integration.config_schema}


def missing_keys(schema: dict[str, ConfigKey], have: Iterable[str]) -> list[str]:
    """Required keys with neither a value nor a default, in schema order."""
    have = set(have)
    return [
        key.key
        for key in schema.values()
        if key.required and key.default_value is None and key.key not in have
    ]


@dataclass(frozen=True)
class ConfigEntry:
    key: str
    value: str | None  # None removes the environment's value


async def deployment_for(
    session: AsyncSession, *, integration: Integration, environment_id: str
) -> Deployment:
    """The integration's deployment in an environment of its organization's pipeline."""
    deployment = (
        await session.exec(
            select(Deployment).where(
                Deployment.integration_id == integration.id,
                Deployment.environment_id == environment_id,
            )
        )
    ).first()
    environment = await session.get(Environment, environment_id)
    if environment is None or environment.organization_id != integration.organization_id:
        raise NotFound(f"no environment with id {environment_id}", id=environment_id)
    if deployment is None:
        raise InvalidInput(
            f"{environment.name} is not in the pipeline of the integration's project",
            field="environmentId",
        )
    return deployment


async def set_configuration(
    session: AsyncSession,
    *,
    actor: User,
    box: SecretBox,
    integration_id: str,
    environment_id: str,
    entries: Sequence[ConfigEntry],
) -> Deployment:
    """Set or remove values of one environment. They apply at the deployment's next restart."""
    integration = await get_owned(
        session, Integration, integration_id, actor=actor, permission=Permission.DEVELOP
    )
    deployment = await deployment_for(
        session, integration=integration, environment_id=environment_id
    )
    if not entries:
        raise InvalidInput("entries must not be empty", field="entries")
    await apply_entries(
        session,
        box=box,
        integration=integration,
        deployment=deployment,
        entries=validate_entries(integration, entries),
    )
    # Keys only: values (secret or not) stay out of the audit log.
    audit.record(
        session,
        organization_id=integration.organization_id,
        actor=actor,
        action="configuration.set",
        subject_id=deployment.id,
        environment_id=environment_id,
        keys_set=[e.key for e in entries if e.value is not None],
        keys_removed=[e.key for e in entries if e.value is None],
    )
    return deployment


def validate_entries(
    integration: Integration, entries: Sequence[ConfigEntry], *, field: str = "entries"
) -> list[ConfigEntry]:
    """The entries with values in their normal form, if every key is declared, given once, and
    every value parses as its key's type."""
    schema = schema_of(integration)
    seen: set[str] = set()
    result: list[ConfigEntry] = []
    for index, entry in enumerate(entries):
        where = f"{field}[{index}]"
        key = schema.get(entry.key)
        if key is None:
            raise InvalidInput(
                f"{entry.key!r} is not in the integration's config schema", field=f"{where}.key"
            )
        if entry.key in seen:
            raise InvalidInput(f"{entry.key!r} is given twice", field=f"{where}.key")
        seen.add(entry.key)
        value = (
            None if entry.value is None else parse_value(key, entry.value, field=f"{where}.value")
        )
        result.append(ConfigEntry(key=entry.key, value=value))
    return result


async def stored_values(session: AsyncSession, deployment_id: str) -> dict[str, ConfigValue]:
    rows = (
        await session.exec(select(ConfigValue).where(ConfigValue.deployment_id == deployment_id))
    ).all()
    return {row.key: row for row in rows}


async def plaintext_values(
    session: AsyncSession, *, box: SecretBox, deployment_id: str
) -> dict[str, str]:
    """The environment's values as the runtime needs them: secrets opened."""
    return {
        key: box.open(row.value) if row.secret else row.value
        for key, row in (await stored_values(session, deployment_id)).items()
    }


async def apply_entries(
    session: AsyncSession,
    *,
    box: SecretBox,
    integration: Integration,
    deployment: Deployment,
    entries: Sequence[ConfigEntry],
) -> None:
    """Write already validated entries; a None value removes the key's value."""
    schema = schema_of(integration)
    current = await stored_values(session, deployment.id)
    now = utcnow()
    for entry in entries:
        key = schema[entry.key]
        stored = current.get(entry.key)
        if entry.value is None:
            if stored is not None:
                await session.delete(stored)
            continue
        sealed = box.seal(entry.value) if key.secret else entry.value
        if stored is None:
            stored = ConfigValue(
                deployment_id=deployment.id,
                key=key.key,
                value=sealed,
                secret=key.secret,
                updated_at=now,
            )
        else:
            stored.value, stored.secret, stored.updated_at = sealed, key.secret, now
        session.add(stored)
    await session.flush()
    await bump_config_version(session, deployment)


async def bump_config_version(session: AsyncSession, deployment: Deployment) -> None:
    """What the deployment would run changed: its configuration version moves on, in the
    database (two transactions that both change it move it twice, so that a request filed
    at the version before either sees that something changed)."""
    await session.flush()
    await session.exec(
        update(Deployment)
        .where(col(Deployment.id) == deployment.id)
        .values(config_version=col(Deployment.config_version) + 1, updated_at=utcnow())
    )
    await session.refresh(deployment, ["config_version", "updated_at"])


async def replace_values(
    session: AsyncSession,
    *,
    box: SecretBox,
    integration: Integration,
    deployment: Deployment,
    values: dict[str, str],
) -> None:
    """Make the environment's values exactly these (a rollback restores a snapshot)."""
    current = await stored_values(session, deployment.id)
    removals = [ConfigEntry(key=key, value=None) for key in current if key not in values]
    schema = schema_of(integration)
    settings = [ConfigEntry(key=key, value=value) for key, value in values.items() if key in schema]
    await apply_entries(
        session,
        box=box,
        integration=integration,
        deployment=deployment,
        entries=removals + settings,
    )


def effective_values(schema: dict[str, ConfigKey], values: dict[str, str]) -> dict[str, str]:
    """What the integration runs with: its values, and defaults for keys without one."""
    result = {
        key.key: key.default_value
        for key in schema.values()
        if key.default_value is not None and key.key not in values
    }
    result.update(values)
    return {key: value for key, value in result.items() if value is not None}


@dataclass(frozen=True)
class EffectiveValue:
    """A key's value as a deployment would run with it, for reading: a secret's value is never
    opened (nor its ciphertext kept), only that it is set."""

    key: str
    secret: bool
    value: str | None  # None for a secret, always


async def effective_configuration_unopened(
    session: AsyncSession, *, deployments: Sequence[tuple[Integration, Deployment]]
) -> dict[str, dict[str, EffectiveValue]]:
    """Each deployment's effective configuration (by deployment id), in one read: its own
    values over its integration's schema defaults, as ``effective_values`` merges them.

    The one place that says what a deployment's configuration is made of for a reader (drift):
    the linked configuration groups' values, under the deployment's own. It takes no
    SecretBox, so it cannot open a secret: a key is secret if the schema or the stored row says
    so (a key declared secret after its value was stored, or the other way round, stays
    unopened). The runtime's configuration, secrets opened, is another function's."""
    ids = [deployment.id for _, deployment in deployments]
    rows = (
        await session.exec(select(ConfigValue).where(col(ConfigValue.deployment_id).in_(ids)))
    ).all()
    stored: dict[str, dict[str, ConfigValue]] = {deployment_id: {} for deployment_id in ids}
    for row in rows:
        stored[row.deployment_id][row.key] = row
    grouped = await group_values_unopened(session, [deployment for _, deployment in deployments])
    result: dict[str, dict[str, EffectiveValue]] = {}
    for integration, deployment in deployments:
        schema = schema_of(integration)
        own = stored[deployment.id]
        secret = {
            key
            for key in {*schema, *own}
            if (key in schema and schema[key].secret) or (key in own and own[key].secret)
        }
        groups = grouped.get(deployment.id, {})
        # Secrets enter the merge by presence only: their placeholder never leaves this function.
        # A group's key counts as present, so that a schema default does not hide its value.
        merged = effective_values(
            schema,
            {
                **{key: "" for key in groups},
                **{key: "" if key in secret else row.value for key, row in own.items()},
            },
        )
        result[deployment.id] = {
            key: groups[key]
            if key in groups and key not in own
            else EffectiveValue(
                key=key, secret=key in secret, value=None if key in secret else value
            )
            for key, value in merged.items()
        }
    return result


def group_file_key(group_name: str) -> str:
    """The key of a configuration group linked as a file: its path under the instance's files."""
    return f"groups/{group_name}.toml"


@dataclass(frozen=True)
class LinkedGroup:
    """A configuration group linked to a deployment's integration, with its values (sealed
    where secret) in the deployment's environment, in key order."""

    group: ConfigurationGroup
    mode: GroupLinkMode
    rows: list[ConfigurationGroupValue]


async def linked_groups(
    session: AsyncSession, deployments: Sequence[Deployment]
) -> dict[str, list[LinkedGroup]]:
    """By deployment id, the groups linked to its integration that hold values in its
    environment, in name order (two statements, whatever the number of deployments)."""
    links = (
        await session.exec(
            select(ConfigurationGroupLink, ConfigurationGroup)
            .join(
                ConfigurationGroup,
                col(ConfigurationGroup.id) == col(ConfigurationGroupLink.group_id),
            )
            .where(
                col(ConfigurationGroupLink.integration_id).in_(
                    {deployment.integration_id for deployment in deployments}
                )
            )
            .order_by(col(ConfigurationGroup.name))
        )
    ).all()
    rows = (
        (
            await session.exec(
                select(ConfigurationGroupValue)
                .where(
                    col(ConfigurationGroupValue.group_id).in_({group.id for _, group in links}),
                    col(ConfigurationGroupValue.environment_id).in_(
                        {deployment.environment_id for deployment in deployments}
                    ),
                )
                .order_by(col(ConfigurationGroupValue.key))
            )
        ).all()
        if links
        else []
    )
    found: dict[str, list[LinkedGroup]] = {}
    for deployment in deployments:
        found[deployment.id] = []
        for link, group in links:
            if link.integration_id != deployment.integration_id:
                continue
            here = deployment.environment_id
            mine = [r for r in rows if r.group_id == group.id and r.environment_id == here]
            if mine:
                found[deployment.id].append(LinkedGroup(group=group, mode=link.mode, rows=mine))
    return found


async def group_values_unopened(
    session: AsyncSession, deployments: Sequence[Deployment]
) -> dict[str, dict[str, EffectiveValue]]:
    """What the configuration groups linked to each deployment's integration give it in its
    environment (configuration_groups.py), secrets unopened: by deployment id."""
    linked = await linked_groups(session, deployments)
    found: dict[str, dict[str, EffectiveValue]] = {}
    for deployment_id, groups in linked.items():
        values: dict[str, EffectiveValue] = {}
        for linked_group in groups:
            mine = linked_group.rows
            if linked_group.mode is GroupLinkMode.FILE:
                path = group_file_key(linked_group.group.name)
                secret = any(r.secret for r in mine)
                document = None if secret else tomli_w.dumps({r.key: r.value for r in mine})
                values[path] = EffectiveValue(key=path, secret=secret, value=document)
            else:
                for r in mine:
                    values[r.key] = EffectiveValue(
                        key=r.key, secret=r.secret, value=None if r.secret else r.value
                    )
        found[deployment_id] = values
    return found


class ConfigChangeKind(enum.StrEnum):
    ADDED = "ADDED"
    CHANGED = "CHANGED"
    REMOVED = "REMOVED"
    UNCHANGED = "UNCHANGED"


@dataclass(frozen=True)
class ConfigDiff:
    key: str
    secret: bool
    before: str | None  # None for secrets and for keys that had no value
    after: str | None  # None for secrets and for removed keys
    kind: ConfigChangeKind


def diff_values(
    schema: dict[str, ConfigKey],
    before: dict[str, str],
    after: dict[str, str],
    touched: set[str],
    secrets: Collection[str] = (),
) -> list[ConfigDiff]:
    """How the values change from ``before`` to ``after``. A secret in ``touched`` is CHANGED
    whether or not the new value equals the old: comparing them would let whoever chose the
    new value learn the old one. A key is secret when the schema says so, or is in
    ``secrets`` (a configuration group's secret)."""
    diffs = []
    for key in [*schema, *sorted(k for k in {*before, *after} if k not in schema)]:
        old, new = before.get(key), after.get(key)
        if old is None and new is None:
            continue
        secret = (key in schema and schema[key].secret) or key in secrets
        if old is None:
            kind = ConfigChangeKind.ADDED
        elif new is None:
            kind = ConfigChangeKind.REMOVED
        elif (key in touched) if secret else (old != new):
            kind = ConfigChangeKind.CHANGED
        else:
            kind = ConfigChangeKind.UNCHANGED
        diffs.append(
            ConfigDiff(
                key=key,
                secret=secret,
                before=None if secret else old,
                after=None if secret else new,
                kind=kind,
            )
        )
    return diffs
