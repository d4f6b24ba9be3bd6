"""How a client command fails: every failure is a ``ClientError`` whose message is one line a
person can act on; its ``exit_code`` is what the command exits with (2: the request was
refused, 1: anything else, 0 for a change that became a request).

``mutation_result`` turns a mutation's union result into the type asked for, or into the
error that says why not (the contract's error types, by ``__typename``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXIT_FAILED = 1
EXIT_REFUSED = 2


class ClientError(Exception):
    """A failure of a client command; ``str()`` is one line for stderr."""

    exit_code = EXIT_FAILED


class ServerUnreachable(ClientError):
    """No answer from the server (refused, timed out, name unknown)."""


class ConnectionLost(ClientError):
    """A live connection dropped (the server restarted, say): worth reconnecting."""


class Unauthenticated(ClientError):
    """The server refused the token."""


class NotFound(ClientError):
    """The integration, environment, organization or build does not exist (or is not
    visible to the token's user)."""


class RequestFailed(ClientError):
    """The server answered with GraphQL errors (top level, or a subscription's ``error``);
    ``codes`` are their ``extensions.code``."""

    def __init__(self, message: str, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.codes = codes


class RequestFiled(ClientError):
    """A change into a protected environment became a request that waits for reviews."""

    exit_code = 0

    def __init__(self, request_id: str, required_approvals: int) -> None:
        super().__init__(
            f"it is a request now, waiting for {required_approvals} approval(s) "
            f"(request {request_id}; its reviewers see it in pendingApprovals)"
        )
        self.request_id = request_id
        self.required_approvals = required_approvals


class Refused(ClientError):
    """A mutation answered with one of the contract's error types: nothing was changed."""

    exit_code = EXIT_REFUSED

    def __init__(
        self,
        message: str,
        *,
        typename: str,
        code: str | None = None,
        missing_keys: tuple[str, ...] = (),
        blockers: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.typename = typename
        self.code = code
        self.missing_keys = missing_keys
        self.blockers = blockers

    def detail(self) -> str:
        """The message with the missing keys and the blockers, when there are any."""
        text = str(self)
        if self.missing_keys:
            text += f" (missing: {', '.join(self.missing_keys)})"
        if self.blockers:
            text += f" (blockers: {', '.join(self.blockers)})"
        return text


class ProtocolViolation(ClientError):
    """The server broke the graphql-transport-ws protocol."""


def usage(message: str) -> ClientError:
    """A refusal of the command's own arguments (exit code 2)."""
    error = ClientError(message)
    error.exit_code = EXIT_REFUSED
    return error


def request_failed(errors: object) -> RequestFailed:
    """One ``RequestFailed`` from a GraphQL ``errors`` list: their messages, and their codes."""
    messages: list[str] = []
    codes: list[str] = []
    if isinstance(errors, list):
        for error in errors:
            if not isinstance(error, dict):
                continue
            messages.append(str(error.get("message", "unknown error")))
            extensions = error.get("extensions")
            if isinstance(extensions, dict) and isinstance(extensions.get("code"), str):
                codes.append(extensions["code"])
    return RequestFailed("; ".join(messages) or "the server answered with an error", tuple(codes))


def mutation_result(data: Mapping[str, Any], field: str, expected: str) -> dict[str, Any]:
    """A mutation's result of type ``expected``; ``Refused`` for the contract's error types,
    ``NotFound`` for NotFoundError, ``RequestFiled`` for a change that became a request."""
    result = data.get(field)
    if not isinstance(result, dict):
        raise ClientError(f"the server's answer to {field} has no result")
    typename = str(result.get("__typename"))
    if typename == expected:
        return result
    if typename == "Promotion" and expected == "Deployment":
        raise RequestFiled(str(result["id"]), int(result["requiredApprovals"]))
    if typename == "NotFoundError":
        raise NotFound(str(result.get("errorMessage") or "not found"))
    raise Refused(
        str(result.get("errorMessage") or typename),
        typename=typename,
        code=result.get("errorCode"),
        missing_keys=tuple(result.get("missingKeys") or ()),
        blockers=tuple(result.get("blockers") or ()),
    )
