"""The CLI's connection to the API, on the ``gql`` library: queries and mutations over HTTP
(its httpx transport), subscriptions over graphql-transport-ws (its websockets transport, the
bearer token in ``connection_init``). Operations are named, from app/client/operations/.

What this module adds to gql is what the CLI says when something goes wrong: every failure
becomes a ``ClientError`` (app/client/errors.py) with one line a person can act on, whatever
layer it came from (gql wraps httpx's and websockets' exceptions; the cause says which).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportError,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from app.client.errors import (
    ClientError,
    ConnectionLost,
    ProtocolViolation,
    ServerUnreachable,
    Unauthenticated,
    request_failed,
)
from app.client.operations import document

DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# connection_init must be acknowledged within this long.
ACK_TIMEOUT_S = 10.0
# The largest websocket message taken (a promotion's events fit many times over).
MAX_MESSAGE_BYTES = 2**22
PAGE_SIZE = 100

# Close codes of graphql-transport-ws (and the websocket codes that mean "try again").
CLOSE_FORBIDDEN = 4403
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013})


def graphql_url(url: str) -> str:
    """The GraphQL endpoint of a server URL (given with or without ``/graphql``)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"the API URL must be http:// or https://, not {url!r}")
    path = parts.path.rstrip("/")
    if not path.endswith("/graphql"):
        path += "/graphql"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def websocket_url(url: str) -> str:
    parts = urlsplit(graphql_url(url))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _request(operation: str, variables: Mapping[str, object] | None) -> GraphQLRequest:
    return GraphQLRequest(document(operation), variable_values=dict(variables or {}))


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from, outermost first (gql's transport errors
    wrap httpx's and websockets' own)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class GraphQLClient:
    """Queries and mutations over HTTP; subscriptions over graphql-transport-ws, one websocket
    each. Use as an async context manager (it holds an HTTP connection pool)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_s: float = REQUEST_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = graphql_url(url)
        self.websocket_url = websocket_url(url)
        self._token = token
        self._timeout_s = timeout_s
        http_options: dict[str, Any] = {
            "headers": {"Authorization": f"Bearer {token}"},
            "timeout": httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            "event_hooks": {"response": [self._check_response]},
        }
        if transport is not None:
            http_options["transport"] = transport
        # execute_timeout off: httpx's timeouts above are the ones the messages name.
        self._http = Client(
            transport=HTTPXAsyncTransport(self.url, **http_options), execute_timeout=None
        )
        self._stack = contextlib.AsyncExitStack()
        self._session: Any = None

    async def __aenter__(self) -> GraphQLClient:
        self._session = await self._stack.enter_async_context(self._http)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._session = None
        await self._stack.aclose()

    async def execute(
        self, operation: str, variables: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """The ``data`` of the named operation; a ``ClientError`` for anything else."""
        if self._session is None:
            raise RuntimeError("GraphQLClient.execute outside `async with GraphQLClient(...)`")
        try:
            data: dict[str, Any] = await self._session.execute(_request(operation, variables))
        except TransportQueryError as exc:
            raise request_failed(exc.errors) from None
        except TransportError as exc:
            raise self._http_failure(exc) from None
        return data

    async def pages(
        self, operation: str, variables: Mapping[str, object], path: tuple[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """The nodes of a connection at ``data[path[0]][path[1]]``, page by page (none when
        its owner does not exist)."""
        after: str | None = None
        while True:
            data = await self.execute(operation, {**variables, "first": PAGE_SIZE, "after": after})
            owner = data[path[0]]
            if owner is None:
                return
            connection = owner[path[1]]
            for edge in connection["edges"]:
                yield edge["node"]
            if not connection["pageInfo"]["hasNextPage"]:
                return
            after = connection["pageInfo"]["endCursor"]

    async def subscribe(
        self,
        operation: str,
        variables: Mapping[str, object] | None = None,
        *,
        subscribed: asyncio.Event | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The ``data`` of each ``next`` message, until the server completes the subscription.

        ``subscribed`` is set once the connection is acknowledged, right before the
        subscription is sent (in the same step of the event loop, so before anything its
        waiter does). Closing the iterator early sends ``complete`` and closes the
        connection."""
        transport = WebsocketsTransport(
            url=self.websocket_url,
            init_payload={"authorization": f"Bearer {self._token}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            connect_timeout=CONNECT_TIMEOUT_S,
            ack_timeout=ACK_TIMEOUT_S,
            connect_args={"max_size": MAX_MESSAGE_BYTES, "open_timeout": CONNECT_TIMEOUT_S},
        )
        try:
            async with Client(transport=transport, execute_timeout=None) as session:
                if subscribed is not None:
                    subscribed.set()
                async for data in session.subscribe(_request(operation, variables)):
                    yield data
        except TransportQueryError as exc:
            raise request_failed(exc.errors) from None
        except (TransportError, OSError) as exc:  # OSError: TimeoutError of the connect
            raise self._websocket_failure(exc) from None

    # ---- what a failure is called --------------------------------------------------------

    async def _check_response(self, response: httpx.Response) -> None:
        """An HTTP answer that is no GraphQL response, said as the CLI says it (an httpx event
        hook: it runs before gql reads the answer)."""
        if response.status_code == 401:
            raise Unauthenticated(
                f"Promenade at {self.url} refused the token (HTTP 401): set PROMENADE_TOKEN "
                "or --token to a valid API token"
            )
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClientError(
                f"{self.url} answered HTTP {response.status_code} without a GraphQL response "
                "(is this a Promenade API URL?)"
            )
        if not body.get("errors") and (
            response.status_code != 200 or not isinstance(body.get("data"), dict)
        ):
            raise ClientError(f"{self.url} answered HTTP {response.status_code}")

    def _unreachable(self, exc: BaseException) -> ServerUnreachable:
        reason = str(exc) or type(exc).__name__
        return ServerUnreachable(f"cannot reach Promenade at {self.url}: {reason}")

    def _http_failure(self, exc: TransportError) -> ClientError:
        for cause in _causes(exc):
            if isinstance(cause, ClientError):  # raised by _check_response
                return cause
            if isinstance(cause, httpx.TimeoutException):
                return ServerUnreachable(
                    f"Promenade at {self.url} did not answer within {self._timeout_s:g} s"
                )
            if isinstance(cause, httpx.HTTPError | httpx.InvalidURL):
                return self._unreachable(cause)
        if isinstance(exc, TransportServerError | TransportProtocolError):
            return ClientError(f"{self.url} answered without a GraphQL response: {exc}")
        return self._unreachable(exc)

    def _websocket_failure(self, exc: BaseException) -> ClientError:
        for cause in _causes(exc):
            if isinstance(cause, ClientError):
                return cause
            if isinstance(cause, ConnectionClosed):
                return self._closed(cause)
            if isinstance(cause, InvalidStatus):
                status = cause.response.status_code
                if status == 401:
                    return Unauthenticated(
                        f"Promenade at {self.websocket_url} refused the token (HTTP 401)"
                    )
                return ClientError(
                    f"{self.websocket_url} refused the websocket connection (HTTP {status})"
                )
            if isinstance(cause, InvalidURI):
                return ClientError(f"not a websocket URL: {cause}")
            if isinstance(cause, InvalidHandshake):
                return ClientError(f"websocket handshake with {self.websocket_url} failed: {cause}")
            if isinstance(cause, TimeoutError):
                return ServerUnreachable(
                    f"Promenade at {self.websocket_url} did not answer within "
                    f"{CONNECT_TIMEOUT_S:g} s"
                )
            if isinstance(cause, OSError):
                return self._unreachable(cause)
            if isinstance(cause, TransportProtocolError):
                return ProtocolViolation(
                    f"{self.websocket_url} broke the graphql-transport-ws protocol: {cause}"
                )
        return ClientError(f"the connection to {self.websocket_url} failed: {exc}")

    def _closed(self, exc: ConnectionClosed) -> ClientError:
        close = exc.rcvd
        code = close.code if close is not None else 1006
        reason = close.reason if close is not None else ""
        if code == CLOSE_FORBIDDEN:
            return Unauthenticated(
                f"Promenade at {self.websocket_url} refused the token (close code 4403): set "
                "PROMENADE_TOKEN or --token to a valid API token"
            )
        detail = f"code {code}" + (f": {reason}" if reason else "")
        if code in RETRYABLE_CLOSE_CODES:
            return ConnectionLost(f"the connection to {self.websocket_url} was lost ({detail})")
        return ClientError(f"Promenade at {self.websocket_url} closed the connection ({detail})")
