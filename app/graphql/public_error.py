"""An error whose message is meant for the client; every other exception is masked."""

from __future__ import annotations

from typing import Any


class PublicError(Exception):
    """``field``: the argument or input field that is wrong, for a VALIDATION_ERROR (in the
    error's extensions, as a ValidationError's ``field``)."""

    def __init__(
        self, message: str, *, code: str = "BAD_REQUEST", field: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.extensions: dict[str, Any] = {"code": code}
        if field is not None:
            self.extensions["field"] = field
