"""Blanking secret values out of free text (an instance's output, a failure reason) before it
is stored or shown: every occurrence, also one that a line break splits."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shorter secret values are not blanked out of free text: "1" would garble every number.
MIN_MASKED_LENGTH = 4
MASK = "[secret]"
_LINE_BREAK = r"(?:\r?\n)?"


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value of at least MIN_MASKED_LENGTH characters replaced."""
    values = sorted({s for s in secrets if len(s) >= MIN_MASKED_LENGTH}, key=len, reverse=True)
    if not values:
        return text
    pattern = "|".join(_LINE_BREAK.join(re.escape(char) for char in value) for value in values)
    return re.sub(pattern, MASK, text)
