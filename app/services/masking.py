"""Blanking secret values out of free text (an instance's output, a failure reason) before it
is stored or shown."""

from __future__ import annotations

from collections.abc import Iterable

# Shorter secret values are not blanked out of free text: "1" would garble every number.
MIN_MASKED_LENGTH = 4
MASK = "[secret]"


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value of at least MIN_MASKED_LENGTH characters replaced."""
    for value in sorted(set(secrets), key=len, reverse=True):
        if len(value) >= MIN_MASKED_LENGTH:
            text = text.replace(value, MASK)
    return text
