"""What a GraphQL request is refused for before it is parsed: a body that is too long, not
JSON, not an object, or holds NUL characters; the same checks for the parameters of a query
sent with GET."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive

from app.graphql.media_types import JSON

# The longest GraphQL document a request may carry; a longer one is refused before parsing.
MAX_DOCUMENT_CHARS = 100_000


def valid_subscribe_payload(payload: object) -> bool:
    """A websocket ``subscribe`` payload holds what an HTTP request must: a query of bounded
    length, optional variables and operation name of the right types, no NUL characters."""
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return False
    if len(payload["query"]) > MAX_DOCUMENT_CHARS:
        return False
    variables = payload.get("variables")
    name = payload.get("operationName")
    return (
        (variables is None or isinstance(variables, dict))
        and (name is None or isinstance(name, str))
        and not holds_nul(payload)
        and not _NUL_ESCAPE.search(payload["query"])
    )


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request's body, or None as soon as it is longer than ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the body read already to the app, then passes on what the
    server says next (the client going away)."""
    sent = False

    async def replayed() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def refusal_of(request: Request, body: bytes, media_type: str = JSON) -> Response | None:
    """Why a POST body cannot be a GraphQL request, as the response that says so (sent as
    ``media_type``); None when it can be one. Strawberry reads as JSON every body whose
    content type mentions application/json: each of those is checked here, and nothing else
    is read."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if "application/json" not in content_type:
        return refused(415, "send the request as application/json", media_type)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return refused(400, "the request body is not UTF-8", media_type)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        return refused(400, "the request body is not JSON", media_type)
    if not isinstance(document, dict):
        return refused(400, "the request body must be a JSON object with a query", media_type)
    return _refusal_of_request(document, media_type)


def refusal_of_parameters(request: Request, media_type: str = JSON) -> Response | None:
    """Why the URL parameters of a GET cannot be a GraphQL request (``query``, and
    ``variables`` and ``extensions`` as JSON objects), as the response that says so; None when
    they can be one."""
    document: dict[str, object] = dict(request.query_params)
    for name in ("variables", "extensions"):
        value = document.get(name)
        if value is None or value == "":
            document.pop(name, None)
            continue
        try:
            document[name] = json.loads(str(value))
        except (ValueError, RecursionError):
            return refused(400, f"the request's {name} parameter is not JSON", media_type)
    return _refusal_of_request(document, media_type)


def _refusal_of_request(document: dict[str, Any], media_type: str) -> Response | None:
    query = document.get("query")
    if not isinstance(query, str):
        return refused(400, "the request's query must be a string", media_type)
    if len(query) > MAX_DOCUMENT_CHARS:
        return refused(413, f"the query is over {MAX_DOCUMENT_CHARS} characters", media_type)
    if not isinstance(document.get("variables"), dict | None):
        return refused(400, "the request's variables must be a JSON object", media_type)
    if not isinstance(document.get("operationName"), str | None):
        return refused(400, "the request's operationName must be a string", media_type)
    if holds_nul(document) or _NUL_ESCAPE.search(query):
        return refused(400, NUL_REFUSAL, media_type)
    if not all(_encodable(text) for text in _strings(document)):
        return refused(400, SURROGATE_REFUSAL, media_type)
    return None


# No field of the API takes a NUL character, and PostgreSQL stores none: refused at the door
# rather than answered with an unexpected error from deep down.
NUL_REFUSAL = "the request may not contain NUL characters (U+0000)"


# A NUL escaped in a GraphQL string literal of the document: \u0000 or \u{0}.
_NUL_ESCAPE = re.compile(r"\\u(?:0000|\{0+\})", re.IGNORECASE)


# A JSON string may escape half of a surrogate pair ("\\ud800"), which no UTF-8 text holds:
# it could not be stored, logged or echoed back in an error message.
SURROGATE_REFUSAL = "the request may not contain unpaired surrogates (\\ud800-\\udfff)"


def holds_nul(value: object) -> bool:
    """A NUL in any string of a request (a JSON \\u0000 is one once decoded)."""
    return any("\x00" in text for text in _strings(value))


def _strings(value: object) -> Iterator[str]:
    """Every string of a decoded JSON value, keys included; without recursion, so that a
    document nested as deep as the parser allows cannot exhaust the stack here."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refused(
    status: int,
    message: str,
    media_type: str = JSON,
    *,
    headers: dict[str, str] | None = None,
) -> Response:
    """A GraphQL response with one BAD_REQUEST error and no data, sent as ``media_type``."""
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]},
        status_code=status,
        headers=headers,
        media_type=media_type,
    )
