"""What a failure text (an instance's output, a reason) may show, and to whom.

Secret values are blanked out of free text before it is stored or shown: every occurrence,
in any case, split by line breaks, and in the encodings a build most often prints a value
in: base64 (standard and URL-safe, at any alignment inside a longer encoded text), hex, URL
encoding, and reversed. Line breaks (CR and LF) are left out of both the text and the secrets
before they are compared, so a secret printed across lines, or one that holds a CRLF itself
(a certificate pasted from elsewhere), is still found; what is blanked is the stretch of the
original text that holds it. Plain substring search (no regular expression): a secret of a
megabyte costs a scan, not a compiled pattern of millions of states.

An instance's output belongs to DEVELOPERs and ADMINs: a failure reason carries it after
OUTPUT_HEADING, and ``without_output`` gives the part anyone who may read the deployment may
see (the exit code, the out-of-memory or health-check reason).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

# Shorter secret values are not blanked out of free text: "1" would garble every number.
MIN_MASKED_LENGTH = 4
# An encoded form shorter than this is not looked for (it would match too much).
MIN_ENCODED_LENGTH = 8
MASK = "[secret]"
OUTPUT_HEADING = "\nlast lines of output:\n"
NO_OUTPUT = "\n(no output)"
_LINE_BREAKS = str.maketrans("", "", "\r\n")


def with_output(reason: str, lines: list[str]) -> str:
    """A failure reason followed by the instance's last lines of output."""
    return reason + (OUTPUT_HEADING + "\n".join(lines) if lines else NO_OUTPUT)


def without_output(text: str | None) -> str | None:
    """The failure text without the instance's output (for readers who may not see it)."""
    if text is None:
        return None
    return text.split(OUTPUT_HEADING, 1)[0].removesuffix(NO_OUTPUT)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret value of at least MIN_MASKED_LENGTH characters, and its
    common encodings, replaced by MASK."""
    needles = {n for secret in secrets for n in _forms(secret)}
    if not needles or not text:
        return text
    # The text lower-cased without its line breaks, and where each of its characters came
    # from (lower-casing may turn one character into two).
    origin: list[int] = []
    flat_chars: list[str] = []
    for index, char in enumerate(text):
        if char in "\r\n":
            continue
        for lowered in char.lower():
            flat_chars.append(lowered)
            origin.append(index)
    flat = "".join(flat_chars)
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


def _forms(secret: str) -> set[str]:
    """The secret and its encodings, lower-cased and without line breaks, as searched for."""
    plain = secret.translate(_LINE_BREAKS)
    if len(plain) < MIN_MASKED_LENGTH:
        return set()
    forms = {plain, plain[::-1], quote(plain, safe=""), quote_plus(plain), quote(plain)}
    raw = secret.encode()
    forms.add(raw.hex())
    # Inside a longer encoded text the secret starts at any byte of a 3-byte group: from
    # the first whole group on, its encoding is the same whatever came before.
    for skip in range(3):
        part = raw[skip:]
        whole = part[: len(part) // 3 * 3]
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            # Whole groups only, and (where the secret ends the encoded text) all of it,
            # padded or not.
            for encoded in (encode(whole).decode(), encode(part).decode()):
                if len(encoded) >= MIN_ENCODED_LENGTH:
                    forms.update({encoded, encoded.rstrip("=")})
    return {form.lower() for form in forms if len(form) >= MIN_MASKED_LENGTH}


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
