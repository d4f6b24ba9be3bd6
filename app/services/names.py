"""Names, slugs and DNS labels: the shapes users type."""

from __future__ import annotations

import re
import unicodedata

from app.services.errors import InvalidInput

DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9.-]+$")


def clean_name(value: str, *, field: str, max_length: int) -> str:
    """A display name: trimmed, not empty, no control characters, bounded."""
    name = value.strip()
    if not name:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(name) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    if any(ord(ch) < 32 for ch in name):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return name


def clean_description(value: str | None, *, field: str = "description") -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > 1000:
        raise InvalidInput(f"{field} must be at most 1000 characters", field=field)
    return text or None


def name_key(name: str) -> str:
    """What makes two names the same: case does not count."""
    return name.casefold()


def dns_label(value: str, *, field: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise InvalidInput(
            f"{field} must be a DNS label: 1 to 63 of a-z, 0-9 and '-', "
            "not starting or ending with '-'",
            field=field,
        )
    return value


def slugify(name: str) -> str:
    """The slug a name suggests: accents dropped ("Ünïcode" -> "unicode"), lower case, runs of
    other characters become one '-'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    return slug or "item"


def unique_slug(name: str, taken: set[str]) -> str:
    """The name's slug, or the first of slug-2, slug-3, ... that is free in its scope."""
    base = slugify(name)
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: 63 - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        n += 1


def clean_email(value: str) -> str:
    email = value.strip().lower()
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise InvalidInput("email must look like name@example.com", field="email")
    return email
