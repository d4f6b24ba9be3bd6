"""Blanking secret values out of free text (an instance's output, a failure reason) before it
is stored or shown: every occurrence, also one that line breaks split.

Line breaks (CR and LF) are left out of both the text and the secrets before they are compared,
so a secret printed across lines, or one that holds a CRLF itself (a certificate pasted from
elsewhere), is still found; what is blanked is the stretch of the original text that holds
it. Plain substring search (no regular expression): a secret of a megabyte costs a scan, not
a compiled pattern of millions of states.
"""

from __future__ import annotations

from collections.abc import Iterable

# Shorter secret values are not blanked out of free text: "1" would garble every number.
MIN_MASKED_LENGTH = 4
MASK = "[secret]"
_LINE_BREAKS = str.maketrans("", "", "\r\n")


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value of at least MIN_MASKED_LENGTH characters replaced."""
    needles = {s.translate(_LINE_BREAKS) for s in secrets}
    needles = {n for n in needles if len(n) >= MIN_MASKED_LENGTH}
    if not needles or not text:
        return text
    # Where each character of the text without its line breaks came from.
    origin = [i for i, char in enumerate(text) if char not in "\r\n"]
    flat = text.translate(_LINE_BREAKS)
    spans: list[tuple[int, int]] = []
    for needle in needles:
        start = flat.find(needle)
        while start != -1:
            spans.append((origin[start], origin[start + len(needle) - 1] + 1))
            start = flat.find(needle, start + 1)
    if not spans:
        return text
    out: list[str] = []
    position = 0
    for start, end in _merged(spans):
        out.append(text[position:start])
        out.append(MASK)
        position = end
    out.append(text[position:])
    return "".join(out)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
