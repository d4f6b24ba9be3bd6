"""What a GraphQL-over-HTTP answer is sent as, and with which status (the GraphQL over HTTP
specification, https://graphql.github.io/graphql-over-http/draft/).

Two media types: ``application/json``, what every client got before the specification had its
own type (200 with the errors of a request that did not run, as ever), and
``application/graphql-response+json``, for a client that asks for it in ``Accept``: a request
that did not run (its document did not parse or validate, a variable could not be coerced, a
limit refused it) answers 400 without a ``data`` entry, so that a client, a proxy or a log
tells it from an answer by the status alone.
"""

from __future__ import annotations

from strawberry.types import ExecutionResult

JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"

# What the masking of unexpected errors (MaskErrors) says instead of the error.
UNEXPECTED_ERROR = "Unexpected error."

# Ranges of Accept that application/json, the default, satisfies.
_JSON_RANGES = frozenset({JSON, "application/*", "*/*"})


def negotiated(accept: str | None) -> str:
    """The media type to answer with, for a request's ``Accept`` header: the acceptable one of
    higher quality, application/graphql-response+json when both are as good (a client that
    names it knows it). Without the header, or when it accepts neither, application/json: the
    specification lets a server disregard such an Accept, and 406 would break clients that
    send a browser's default."""
    best, best_quality = JSON, 0.0
    for media_range in (accept or "").split(","):
        media, _, parameters = media_range.partition(";")
        media = media.strip().lower()
        candidate = GRAPHQL_RESPONSE if media == GRAPHQL_RESPONSE else None
        if media in _JSON_RANGES:
            candidate = JSON
        if candidate is None:
            continue
        quality = _quality(parameters)
        if quality > best_quality or (
            quality == best_quality and quality > 0 and candidate == GRAPHQL_RESPONSE
        ):
            best, best_quality = candidate, quality
    return best


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0


def did_not_run(result: ExecutionResult) -> bool:
    """A result without data whose errors belong to no field: the request was refused before
    execution (parsing, validation, the limits, variable coercion). A field error that nulls
    the whole ``data`` has a path: that operation ran, and answers 200 in either media type."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def status_of(result: ExecutionResult, media_type: str) -> int:
    """The HTTP status of ``result`` sent as ``media_type``."""
    if media_type != GRAPHQL_RESPONSE or not did_not_run(result):
        return 200
    # An exception before execution is the server's fault, not the request's.
    if any(error.message == UNEXPECTED_ERROR for error in result.errors or ()):
        return 500
    return 400
