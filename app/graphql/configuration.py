"""The configuration entries that requests carry (deploy, promote, set configuration)."""

from __future__ import annotations

import strawberry

from app.services.configuration import ConfigEntry


@strawberry.input
class ConfigEntryInput:
    key: str
    value: str | None = strawberry.field(
        description="Null removes the key's value from this environment."
    )


def config_entries(inputs: list[ConfigEntryInput] | None) -> list[ConfigEntry]:
    """The services' configuration entries for the ones a request gives."""
    return [ConfigEntry(key=entry.key, value=entry.value) for entry in inputs or []]
