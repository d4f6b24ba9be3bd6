"""Configuration values from the command line: ``--set KEY=VALUE``, and secret values that
never pass through it (``--secret KEY`` from standard input or a prompt, ``--secret-env
KEY=VARIABLE``)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from app.client.api import ConfigEntry, Integration
from app.client.errors import usage

if TYPE_CHECKING:
    from app.client.commands.context import Command


def parse_pairs(values: Sequence[str] | None, option: str, *, secret: bool) -> dict[str, str]:
    """``KEY=VALUE`` arguments; a malformed ``--secret`` is reported without its text."""
    pairs: dict[str, str] = {}
    for value in values or ():
        key, sep, item = value.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = "" if secret else f", not {value!r}"
            raise usage(f"{option} takes KEY=VALUE{shown}")
        if key in pairs:
            raise usage(f"{option}: {key} is given twice")
        pairs[key] = item
    return pairs


def read_secrets(keys: Sequence[str] | None, from_env: Sequence[str] | None) -> dict[str, str]:
    """Secret values that never pass through the command line, where any user of the machine
    could read them (``ps``)."""
    secrets: dict[str, str] = {}
    for key in keys or ():
        if "=" in key:
            raise usage(
                "--secret takes a KEY only: its value comes from standard input or a prompt "
                "(or use --secret-env KEY=VARIABLE), never from the command line, where other "
                "users of the machine can read it"
            )
        key = key.strip()
        if not key or key in secrets:
            raise usage(f"--secret: {key or 'a key'} is empty or given twice")
        if sys.stdin.isatty():
            secrets[key] = getpass.getpass(f"{key} (secret): ")
        else:
            line = sys.stdin.readline()
            if not line:
                raise usage(f"--secret {key}: standard input has no line for its value")
            secrets[key] = line.removesuffix("\n").removesuffix("\r")
    for key, variable in parse_pairs(from_env, "--secret-env", secret=False).items():
        if key in secrets:
            raise usage(f"--secret-env: {key} is given twice")
        if variable not in os.environ:
            raise usage(f"--secret-env {key}: the environment has no variable {variable}")
        secrets[key] = os.environ[variable]
    return secrets


def configuration_entries(command: Command, integration: Integration) -> list[ConfigEntry]:
    """``--set`` and the secrets as configuration entries; their secret values are registered
    with the output so that they are never printed."""
    plain = parse_pairs(command.args.set, "--set", secret=False)
    secrets = command.secrets()
    if both := sorted(plain.keys() & secrets.keys()):
        raise usage(f"{', '.join(both)}: given with both --set and --secret")
    schema_secrets = {key["key"] for key in integration["configSchema"] if key["secret"]}
    command.out.add_secrets(secrets.values())
    command.out.add_secrets(value for key, value in plain.items() if key in schema_secrets)
    if given := sorted(plain.keys() & schema_secrets):
        raise usage(
            f"{', '.join(given)}: secret in the integration's schema, so not with --set, which "
            "puts its value where other users of the machine can read it: use --secret KEY "
            "(standard input or a prompt) or --secret-env KEY=VARIABLE; nothing was changed"
        )
    values = {**plain, **secrets}
    return [{"key": key, "value": value} for key, value in values.items()]


def secret_keys(command: Command, integration: Integration) -> set[str]:
    keys = {key["key"] for key in integration["configSchema"] if key["secret"]}
    return keys | set(command.secrets())
