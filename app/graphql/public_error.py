"""An error whose message is meant for the client; every other exception is masked."""

from __future__ import annotations


class PublicError(Exception):
    def __init__(self, message: str, *, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.code = code
        self.extensions = {"code": code}
