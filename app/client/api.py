"""A small typed client of the Promenade API.

``GraphQLClient`` sends queries and mutations over HTTP (httpx) and follows subscriptions over
the graphql-transport-ws protocol (websockets): ``connection_init`` with the bearer token,
``connection_ack``, then ``subscribe`` / ``next`` / ``error`` / ``complete``, answering the
server's ``ping`` with ``pong``. ``PromenadeAPI`` holds the operations the CLI needs, with their
results typed as the GraphQL selections they come from (``TypedDict``s, so ``--json`` prints
them as the API shaped them).

Every failure is a ``ClientError`` whose message is one line a person can act on; its
``exit_code`` is what the command exits with (2: the request was refused, 1: anything else).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, NotRequired, TypedDict, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)
from websockets.typing import Subprotocol

PROTOCOL = Subprotocol("graphql-transport-ws")
DEFAULT_URL = "http://127.0.0.1:8000"
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
# connection_init must be acknowledged within this long.
ACK_TIMEOUT_S = 10.0
PAGE_SIZE = 100

# Close codes of graphql-transport-ws (and the websocket codes that mean "try again").
CLOSE_FORBIDDEN = 4403
RETRYABLE_CLOSE_CODES = frozenset({1001, 1006, 1011, 1012, 1013})

FINAL_PROMOTION_STATUSES = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED"})


# ---- errors ------------------------------------------------------------------------------------


class ClientError(Exception):
    """A failure of a client command; ``str()`` is one line for stderr."""

    exit_code = 1


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
    """The server answered with GraphQL errors (top level, or a subscription's ``error``)."""

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

    exit_code = 2

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


class ProtocolViolation(ClientError):
    """The server broke the graphql-transport-ws protocol."""


# ---- the shapes of the selections below --------------------------------------------------------


class DataPlaneRef(TypedDict):
    id: str
    name: str
    runtime: str


class Environment(TypedDict):
    id: str
    name: str
    dnsPrefix: str
    description: str | None
    critical: bool
    position: int
    frozen: bool
    freezeReason: str | None
    dataPlane: DataPlaneRef


class EnvironmentRef(TypedDict):
    id: str
    name: str


class Organization(TypedDict):
    id: str
    slug: str
    name: str


class OrganizationEnvironments(TypedDict):
    id: str
    slug: str
    name: str
    environments: list[Environment]


class BuildRef(TypedDict):
    id: str
    version: str
    commit: str | None


class ConfigKey(TypedDict):
    key: str
    required: bool
    secret: bool


class PipelineRef(TypedDict):
    id: str
    name: str
    environments: list[EnvironmentRef]


class ProjectDetail(TypedDict):
    id: str
    name: str
    slug: str
    organization: OrganizationEnvironments
    pipeline: PipelineRef


class Integration(TypedDict):
    id: str
    name: str
    slug: str
    configSchema: list[ConfigKey]
    project: ProjectDetail


class Deployment(TypedDict):
    id: str
    status: str
    revision: int
    endpointUrl: str | None
    lastError: str | None
    restartRequired: bool
    missingConfiguration: list[str]
    updatedAt: str
    environment: EnvironmentRef
    build: BuildRef | None


class ConfigChange(TypedDict):
    key: str
    secret: bool
    before: str | None
    after: str | None
    kind: str


class PromotionPlan(TypedDict):
    build: BuildRef | None
    sourceEnvironment: EnvironmentRef
    targetEnvironment: EnvironmentRef
    missingConfiguration: list[str]
    configurationChanges: list[ConfigChange]
    requiresApproval: bool
    blockers: list[str]


class PromotionEvent(TypedDict):
    status: str
    detail: str | None
    at: str
    promotionId: NotRequired[str]


class Promotion(TypedDict):
    id: str
    status: str
    message: str | None
    requestedAt: str
    requiredApprovals: int
    error: str | None
    finishedAt: str | None
    build: BuildRef
    sourceEnvironment: EnvironmentRef
    targetEnvironment: EnvironmentRef
    events: list[PromotionEvent]


class DeploymentEvent(TypedDict):
    deploymentId: str
    integrationId: str
    environmentId: str
    status: str
    revision: int
    endpointUrl: str | None
    detail: str | None
    at: str


class ConfigEntry(TypedDict):
    key: str
    value: str | None


class PromoteInput(TypedDict):
    integrationId: str
    sourceEnvironmentId: str
    targetEnvironmentId: NotRequired[str | None]
    overrides: NotRequired[list[ConfigEntry]]
    copySourceConfiguration: NotRequired[bool]
    message: NotRequired[str | None]
    idempotencyKey: NotRequired[str | None]


class DeployInput(TypedDict):
    integrationId: str
    buildId: str
    environmentId: str
    configuration: NotRequired[list[ConfigEntry]]
    idempotencyKey: NotRequired[str | None]


class RollbackInput(TypedDict):
    deploymentId: str
    revision: NotRequired[int | None]


# ---- documents ---------------------------------------------------------------------------------

ENVIRONMENT_FIELDS = """
fragment EnvironmentFields on Environment {
  id name dnsPrefix description critical position frozen freezeReason
  dataPlane { id name runtime }
}
"""

DEPLOYMENT_FIELDS = """
fragment DeploymentFields on Deployment {
  id status revision endpointUrl lastError restartRequired missingConfiguration updatedAt
  environment { id name }
  build { id version commit }
}
"""

PROMOTION_FIELDS = """
fragment PromotionFields on Promotion {
  id status message requestedAt requiredApprovals error finishedAt
  build { id version commit }
  sourceEnvironment { id name }
  targetEnvironment { id name }
  events { status detail at }
}
"""

# What every mutation result carries when it is one of the contract's error types (the
# fragment is on the type the three mutations' unions all contain). Aliased: Promotion.message
# is nullable, Error.message is not, and GraphQL refuses both under one name.
ERROR_FIELDS = """
fragment ErrorFields on Error {
  errorCode: code
  errorMessage: message
  ... on MissingConfigurationError { missingKeys }
  ... on PromotionBlockedError { blockers }
}
"""

VIEWER_ORGANIZATIONS = """
query ViewerOrganizations { viewer { memberships { organization { id slug name } } } }
"""

ORGANIZATION_ENVIRONMENTS = (
    """
query OrganizationEnvironments($slug: String!) {
  organization(slug: $slug) { id slug name environments { ...EnvironmentFields } }
}
"""
    + ENVIRONMENT_FIELDS
)

INTEGRATION = (
    """
query Integration($id: ID!) {
  integration(id: $id) {
    id name slug
    configSchema { key required secret }
    project {
      id name slug
      organization { id slug name environments { ...EnvironmentFields } }
      pipeline { id name environments { id name } }
    }
  }
}
"""
    + ENVIRONMENT_FIELDS
)

PROJECTS_PAGE = """
query Projects($slug: String!, $first: Int!, $after: String) {
  organization(slug: $slug) {
    projects(first: $first, after: $after) {
      edges { node { id slug name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

INTEGRATIONS_PAGE = """
query Integrations($id: ID!, $first: Int!, $after: String) {
  project(id: $id) {
    integrations(first: $first, after: $after) {
      edges { node { id slug name } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

BUILDS_PAGE = """
query Builds($id: ID!, $first: Int!, $after: String) {
  integration(id: $id) {
    builds(first: $first, after: $after) {
      edges { node { id version commit } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

DEPLOYMENTS = (
    """
query Deployments($id: ID!) { integration(id: $id) { deployments { ...DeploymentFields } } }
"""
    + DEPLOYMENT_FIELDS
)

DEPLOYMENT = (
    """
query Deployment($id: ID!) { deployment(id: $id) { ...DeploymentFields } }
"""
    + DEPLOYMENT_FIELDS
)

DEPLOYMENT_IN = (
    """
query DeploymentIn($integration: ID!, $environment: ID!) {
  integration(id: $integration) {
    deployment(environmentId: $environment) { ...DeploymentFields }
  }
}
"""
    + DEPLOYMENT_FIELDS
)

DEPLOYMENT_LOGS = """
query DeploymentLogs($integration: ID!, $environment: ID!, $lines: Int!) {
  integration(id: $integration) {
    deployment(environmentId: $environment) { id logs(lines: $lines) }
  }
}
"""

PROMOTION_PLAN = """
query PromotionPlan($input: PromoteInput!) {
  promotionPlan(input: $input) {
    build { id version commit }
    sourceEnvironment { id name }
    targetEnvironment { id name }
    missingConfiguration
    configurationChanges { key secret before after kind }
    requiresApproval
    blockers
  }
}
"""

PROMOTE = (
    """
mutation Promote($input: PromoteInput!) {
  promote(input: $input) { __typename ... on Promotion { ...PromotionFields } ...ErrorFields }
}
"""
    + ERROR_FIELDS
    + PROMOTION_FIELDS
)

PROMOTION = (
    """
query Promotion($id: ID!) { promotion(id: $id) { ...PromotionFields } }
"""
    + PROMOTION_FIELDS
)

DEPLOY = (
    """
mutation Deploy($input: DeployInput!) {
  deploy(input: $input) { __typename ... on Deployment { ...DeploymentFields } ...ErrorFields
    ... on Promotion { id requiredApprovals } }
}
"""
    + ERROR_FIELDS
    + DEPLOYMENT_FIELDS
)

ROLLBACK = (
    """
mutation Rollback($input: RollbackInput!) {
  rollback(input: $input) { __typename ... on Deployment { ...DeploymentFields } ...ErrorFields
    ... on Promotion { id requiredApprovals } }
}
"""
    + ERROR_FIELDS
    + DEPLOYMENT_FIELDS
)

PROMOTION_STATUS = """
subscription PromotionStatus($id: ID!) {
  promotionStatus(id: $id) { promotionId status detail at }
}
"""

DEPLOYMENT_EVENTS = """
subscription DeploymentEvents($environmentId: ID, $integrationId: ID) {
  deploymentEvents(environmentId: $environmentId, integrationId: $integrationId) {
    deploymentId integrationId environmentId status revision endpointUrl detail at
  }
}
"""


# ---- transport ---------------------------------------------------------------------------------


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


def _error_messages(errors: object) -> tuple[str, tuple[str, ...]]:
    """One line from a GraphQL ``errors`` list, and the errors' codes."""
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
    return "; ".join(messages) or "the server answered with an error", tuple(codes)


class GraphQLClient:
    """Queries and mutations over HTTP; subscriptions over graphql-transport-ws. Use as an
    async context manager (it holds an HTTP connection pool)."""

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
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S),
            transport=transport,
        )
        self._ids = itertools.count(1)

    async def __aenter__(self) -> GraphQLClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    def _unreachable(self, exc: BaseException) -> ServerUnreachable:
        reason = str(exc) or type(exc).__name__
        return ServerUnreachable(f"cannot reach Promenade at {self.url}: {reason}")

    async def execute(
        self, query: str, variables: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """The response's ``data``; a ``ClientError`` for anything else."""
        try:
            response = await self._http.post(
                self.url, json={"query": query, "variables": dict(variables or {})}
            )
        except httpx.TimeoutException:
            raise ServerUnreachable(
                f"Promenade at {self.url} did not answer within {self._timeout_s:g} s"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from None
        if response.status_code == 401:
            raise Unauthenticated(
                f"Promenade at {self.url} refused the token (HTTP 401): set PROMENADE_TOKEN "
                "or --token to a valid API token"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ClientError(
                f"{self.url} answered HTTP {response.status_code} without a GraphQL response "
                "(is this a Promenade API URL?)"
            )
        if body.get("errors"):
            message, codes = _error_messages(body["errors"])
            raise RequestFailed(message, codes)
        data = body.get("data")
        if response.status_code != 200 or not isinstance(data, dict):
            raise ClientError(f"{self.url} answered HTTP {response.status_code}")
        return data

    async def subscribe(
        self,
        query: str,
        variables: Mapping[str, object] | None = None,
        *,
        subscribed: asyncio.Event | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The ``data`` of each ``next`` message, until the server completes the subscription.

        ``subscribed`` is set once the subscription has been sent on an acknowledged
        connection. Closing the iterator early sends ``complete`` and closes the connection."""
        operation_id = str(next(self._ids))
        try:
            async with connect(
                self.websocket_url,
                subprotocols=[PROTOCOL],
                open_timeout=CONNECT_TIMEOUT_S,
                max_size=2**22,
            ) as websocket:
                if websocket.subprotocol != PROTOCOL:
                    raise ProtocolViolation(
                        f"{self.websocket_url} does not speak the graphql-transport-ws protocol"
                    )
                await self._initialize(websocket)
                await _send(
                    websocket,
                    {
                        "id": operation_id,
                        "type": "subscribe",
                        "payload": {"query": query, "variables": dict(variables or {})},
                    },
                )
                if subscribed is not None:
                    subscribed.set()
                finished = False
                try:
                    while True:
                        message = await _receive(websocket)
                        kind = message.get("type")
                        if kind == "ping":
                            await _send(websocket, {"type": "pong"})
                            continue
                        if kind == "pong":
                            continue
                        if message.get("id") != operation_id:
                            raise ProtocolViolation(
                                f"unexpected {kind!r} message for operation {message.get('id')!r}"
                            )
                        if kind == "next":
                            payload = message.get("payload")
                            if not isinstance(payload, dict):
                                raise ProtocolViolation("a 'next' message without a payload")
                            if payload.get("errors"):
                                finished = True
                                text, codes = _error_messages(payload["errors"])
                                raise RequestFailed(text, codes)
                            data = payload.get("data")
                            if not isinstance(data, dict):
                                raise ProtocolViolation("a 'next' message without data")
                            yield data
                        elif kind == "error":
                            finished = True
                            text, codes = _error_messages(message.get("payload"))
                            raise RequestFailed(text, codes)
                        elif kind == "complete":
                            finished = True
                            return
                        else:
                            raise ProtocolViolation(f"unexpected message type {kind!r}")
                finally:
                    if not finished and websocket.close_code is None:
                        # The consumer stopped early: tell the server, then close.
                        with contextlib.suppress(ConnectionClosed):
                            await _send(websocket, {"id": operation_id, "type": "complete"})
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise Unauthenticated(
                    f"Promenade at {self.websocket_url} refused the token (HTTP 401)"
                ) from None
            raise ClientError(
                f"{self.websocket_url} refused the websocket connection (HTTP {status})"
            ) from None
        except InvalidURI as exc:
            raise ClientError(f"not a websocket URL: {exc}") from None
        except InvalidHandshake as exc:
            raise ClientError(
                f"websocket handshake with {self.websocket_url} failed: {exc}"
            ) from None
        except TimeoutError:
            raise ServerUnreachable(
                f"Promenade at {self.websocket_url} did not answer within {CONNECT_TIMEOUT_S:g} s"
            ) from None
        except OSError as exc:
            raise self._unreachable(exc) from None

    async def _initialize(self, websocket: ClientConnection) -> None:
        await _send(
            websocket,
            {"type": "connection_init", "payload": {"authorization": f"Bearer {self._token}"}},
        )
        async with asyncio.timeout(ACK_TIMEOUT_S):
            while True:
                message = await _receive(websocket)
                kind = message.get("type")
                if kind == "connection_ack":
                    return
                if kind == "ping":
                    await _send(websocket, {"type": "pong"})
                elif kind != "pong":
                    raise ProtocolViolation(f"expected connection_ack, got {kind!r}")

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


async def _send(websocket: ClientConnection, message: dict[str, Any]) -> None:
    await websocket.send(json.dumps(message))


async def _receive(websocket: ClientConnection) -> dict[str, Any]:
    raw = await websocket.recv()
    try:
        message = json.loads(raw)
    except ValueError:
        raise ProtocolViolation("the server sent a message that is not JSON") from None
    if not isinstance(message, dict):
        raise ProtocolViolation("the server sent a message that is not a JSON object")
    return message


# ---- the operations ----------------------------------------------------------------------------


def _result(data: dict[str, Any], field: str, expected: str) -> dict[str, Any]:
    """A mutation's result of type ``expected``; ``Refused`` for the contract's error types."""
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


class PromenadeAPI:
    """The operations of the CLI, typed."""

    def __init__(self, client: GraphQLClient) -> None:
        self.client = client

    async def organizations(self) -> list[Organization]:
        data = await self.client.execute(VIEWER_ORGANIZATIONS)
        return [
            cast("Organization", membership["organization"])
            for membership in data["viewer"]["memberships"]
        ]

    async def organization_environments(self, slug: str) -> OrganizationEnvironments | None:
        data = await self.client.execute(ORGANIZATION_ENVIRONMENTS, {"slug": slug})
        return cast("OrganizationEnvironments | None", data["organization"])

    async def integration(self, integration_id: str) -> Integration | None:
        data = await self.client.execute(INTEGRATION, {"id": integration_id})
        return cast("Integration | None", data["integration"])

    async def _pages(
        self, query: str, variables: dict[str, object], path: tuple[str, str]
    ) -> AsyncIterator[dict[str, Any]]:
        """The nodes of a connection at ``data[path[0]][path[1]]``, page by page."""
        after: str | None = None
        while True:
            data = await self.client.execute(
                query, {**variables, "first": PAGE_SIZE, "after": after}
            )
            owner = data[path[0]]
            if owner is None:
                return
            connection = owner[path[1]]
            for edge in connection["edges"]:
                yield edge["node"]
            if not connection["pageInfo"]["hasNextPage"]:
                return
            after = connection["pageInfo"]["endCursor"]

    async def find_project(self, organization_slug: str, project_slug: str) -> str | None:
        async for node in self._pages(
            PROJECTS_PAGE, {"slug": organization_slug}, ("organization", "projects")
        ):
            if node["slug"] == project_slug:
                return str(node["id"])
        return None

    async def find_integration(self, project_id: str, integration_slug: str) -> str | None:
        async for node in self._pages(
            INTEGRATIONS_PAGE, {"id": project_id}, ("project", "integrations")
        ):
            if node["slug"] == integration_slug:
                return str(node["id"])
        return None

    async def find_build(self, integration_id: str, version: str) -> BuildRef | None:
        async for node in self._pages(
            BUILDS_PAGE, {"id": integration_id}, ("integration", "builds")
        ):
            if node["version"] == version:
                return cast("BuildRef", node)
        return None

    async def deployments(self, integration_id: str) -> list[Deployment]:
        data = await self.client.execute(DEPLOYMENTS, {"id": integration_id})
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        return cast("list[Deployment]", data["integration"]["deployments"])

    async def deployment(self, deployment_id: str) -> Deployment:
        data = await self.client.execute(DEPLOYMENT, {"id": deployment_id})
        if data["deployment"] is None:
            raise NotFound(f"no deployment with id {deployment_id}")
        return cast("Deployment", data["deployment"])

    async def deployment_in(self, integration_id: str, environment_id: str) -> Deployment | None:
        data = await self.client.execute(
            DEPLOYMENT_IN, {"integration": integration_id, "environment": environment_id}
        )
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        return cast("Deployment | None", data["integration"]["deployment"])

    async def deployment_logs(
        self, integration_id: str, environment_id: str, lines: int
    ) -> tuple[str, list[str]] | None:
        """The deployment's id and its last lines of output; None without a deployment."""
        data = await self.client.execute(
            DEPLOYMENT_LOGS,
            {"integration": integration_id, "environment": environment_id, "lines": lines},
        )
        if data["integration"] is None:
            raise NotFound(f"no integration with id {integration_id}")
        deployment = data["integration"]["deployment"]
        if deployment is None:
            return None
        return str(deployment["id"]), [str(line) for line in deployment["logs"]]

    async def promotion_plan(self, request: PromoteInput) -> PromotionPlan | None:
        data = await self.client.execute(PROMOTION_PLAN, {"input": request})
        return cast("PromotionPlan | None", data["promotionPlan"])

    async def promote(self, request: PromoteInput) -> Promotion:
        data = await self.client.execute(PROMOTE, {"input": request})
        return cast("Promotion", _result(data, "promote", "Promotion"))

    async def promotion(self, promotion_id: str) -> Promotion:
        data = await self.client.execute(PROMOTION, {"id": promotion_id})
        if data["promotion"] is None:
            raise NotFound(f"no promotion with id {promotion_id}")
        return cast("Promotion", data["promotion"])

    async def deploy(self, request: DeployInput) -> Deployment:
        data = await self.client.execute(DEPLOY, {"input": request})
        return cast("Deployment", _result(data, "deploy", "Deployment"))

    async def rollback(self, request: RollbackInput) -> Deployment:
        data = await self.client.execute(ROLLBACK, {"input": request})
        return cast("Deployment", _result(data, "rollback", "Deployment"))

    async def promotion_status(self, promotion_id: str) -> AsyncGenerator[PromotionEvent, None]:
        """The promotion's current status, then every change; ends after a final status."""
        async for data in self.client.subscribe(PROMOTION_STATUS, {"id": promotion_id}):
            yield cast("PromotionEvent", data["promotionStatus"])

    async def deployment_events(
        self,
        *,
        environment_id: str | None = None,
        integration_id: str | None = None,
        subscribed: asyncio.Event | None = None,
    ) -> AsyncGenerator[DeploymentEvent, None]:
        async for data in self.client.subscribe(
            DEPLOYMENT_EVENTS,
            {"environmentId": environment_id, "integrationId": integration_id},
            subscribed=subscribed,
        ):
            yield cast("DeploymentEvent", data["deploymentEvents"])
