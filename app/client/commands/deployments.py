"""The commands on an integration's deployments: ``status`` (one row per environment),
``deploy`` and ``rollback`` (sent; with ``--wait``, followed through deploymentEvents and by
reading the deployment until the change is applied or has failed; in a protected environment
filed as a request) and ``logs`` (its last lines of output, through the API)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from app.client.api import (
    DeployInput,
    Deployment,
    DeploymentEvent,
    Environment,
    Integration,
    PromenadeAPI,
    RollbackInput,
)
from app.client.commands.configuration import configuration_entries
from app.client.commands.context import Command, with_timeout
from app.client.commands.names import (
    first_environment,
    integration_label,
    resolve_environment,
    resolve_integration,
)
from app.client.commands.output import Cell, Progress, first_line, parse_time, styled
from app.client.errors import (
    EXIT_FAILED,
    ClientError,
    NotFound,
    Refused,
    RequestFailed,
    RequestFiled,
    usage,
)

# While following a change, the deployment is read again at least this often: an event is
# only a hint to look (the subscription may start after the change's first event).
POLL_INTERVAL_S = 2.0
# How long to wait for the deploymentEvents subscription before sending the change anyway.
SUBSCRIBE_WAIT_S = 5.0


# ---- status ------------------------------------------------------------------------------------


async def status(command: Command) -> int:
    integration = await resolve_integration(command, command.args.integration)
    deployments = await command.api.deployments(integration["id"])
    if command.out.json_mode:
        command.out.json(
            {
                "integration": {
                    "id": integration["id"],
                    "name": integration["name"],
                    "slug": integration["slug"],
                    "project": integration["project"]["slug"],
                },
                "deployments": deployments,
            }
        )
        return 0
    rows: list[list[Cell]] = []
    for deployment in deployments:
        build = deployment["build"]
        error = deployment["lastError"]
        rows.append(
            [
                (deployment["environment"]["name"], "bold"),
                styled(deployment["status"]),
                build["version"] if build else "",
                str(deployment["revision"]) if deployment["revision"] else "",
                deployment["endpointUrl"] or "",
                ("yes", "yellow") if deployment["restartRequired"] else "no",
                (",".join(deployment["missingConfiguration"]), "red"),
                (first_line(error) if error else "", "red"),
            ]
        )
    command.out.table(
        [
            "ENVIRONMENT",
            "STATUS",
            "BUILD",
            "REV",
            "ENDPOINT",
            "RESTART",
            "MISSING CONFIG",
            "LAST ERROR",
        ],
        rows,
        title=f"{integration['name']} ({integration_label(integration)})",
    )
    for deployment in deployments:
        error = deployment["lastError"]
        if error and "\n" in error.strip():
            command.out.line("")
            command.out.line((f"Last error in {deployment['environment']['name']}:", "bold red"))
            for line in error.strip().splitlines():
                command.out.line(f"  {line}")
    return 0


# ---- deploy and rollback -----------------------------------------------------------------------


class EventPump:
    """deploymentEvents of one integration in one environment, gathered in the background from
    before a change is sent. If the subscription cannot be had, following falls back to
    reading the deployment."""

    def __init__(self, api: PromenadeAPI, *, environment_id: str, integration_id: str) -> None:
        self._api = api
        self._environment_id = environment_id
        self._integration_id = integration_id
        self._queue: asyncio.Queue[DeploymentEvent] = asyncio.Queue()
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.error: ClientError | None = None

    async def __aenter__(self) -> EventPump:
        self._task = asyncio.create_task(self._pump())
        subscribed = asyncio.create_task(self._subscribed.wait())
        await asyncio.wait(
            {self._task, subscribed}, timeout=SUBSCRIBE_WAIT_S, return_when="FIRST_COMPLETED"
        )
        subscribed.cancel()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _pump(self) -> None:
        try:
            async for event in self._api.deployment_events(
                environment_id=self._environment_id,
                integration_id=self._integration_id,
                subscribed=self._subscribed,
            ):
                self._queue.put_nowait(event)
        except ClientError as exc:
            self.error = exc

    async def next(self, timeout_s: float) -> DeploymentEvent | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None


Outcome = Literal["succeeded", "failed"]


def change_outcome(queued: Deployment, current: Deployment) -> Outcome | None:
    """How the change queued as ``queued`` went, judged from the deployment now: a new
    revision means it was applied; a later announcement with an error means it failed."""
    if current["revision"] > queued["revision"]:
        return "succeeded"
    later = parse_time(current["updatedAt"]) > parse_time(queued["updatedAt"])
    if later and (current["lastError"] or current["status"] == "ERROR"):
        return "failed"
    return None


async def follow_change(
    command: Command, pump: EventPump, queued: Deployment, what: str
) -> tuple[Deployment, Outcome]:
    """Show the deployment's events until the change queued as ``queued`` has been applied or
    has failed; the deployment then, and which it was."""
    title = _sentence(what)
    queued_at = parse_time(queued["updatedAt"])
    with Progress(command.out, title) as progress:
        progress.step(queued["status"], f"{what} queued", queued["updatedAt"])
        while True:
            event = await pump.next(POLL_INTERVAL_S)
            if (
                event is not None
                and event["deploymentId"] == queued["id"]
                and parse_time(event["at"]) > queued_at  # the queued one is shown already
            ):
                detail = event["detail"] or ""
                if event["endpointUrl"] and event["revision"] > queued["revision"]:
                    detail += f" ({event['endpointUrl']})"
                progress.step(event["status"], detail or None, event["at"])
            current = await command.api.deployment(queued["id"])
            outcome = change_outcome(queued, current)
            if outcome is not None:
                return current, outcome


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


async def _send_change(
    command: Command,
    integration: Integration,
    environment: Environment,
    send: Callable[[], Awaitable[Deployment]],
    what: str,
) -> int:
    """Send a change of the integration's deployment in the environment; with --wait, follow
    it until it is applied or has failed. In a protected environment it is filed as a request:
    that is said, and nothing is followed (a review may take days)."""
    try:
        return await _send_and_follow(command, integration, environment, send, what)
    except RequestFiled as filed:
        if command.out.json_mode:
            command.out.json(
                {"requestId": filed.request_id, "requiredApprovals": filed.required_approvals}
            )
        else:
            command.out.line(f"{_sentence(what)} into {environment['name']}: {filed}")
        return 0


async def _send_and_follow(
    command: Command,
    integration: Integration,
    environment: Environment,
    send: Callable[[], Awaitable[Deployment]],
    what: str,
) -> int:
    args = command.args
    if not args.wait:
        deployment = await _refusable(send, what)
        if command.out.json_mode:
            command.out.json(deployment)
        else:
            command.out.line(
                f"{_sentence(what)}: {integration['name']} in {environment['name']} is ",
                styled(deployment["status"]),
                " (follow it with --wait or promenade status)",
            )
        return 0
    async with EventPump(
        command.api, environment_id=environment["id"], integration_id=integration["id"]
    ) as pump:
        queued = await _refusable(send, what)
        current, outcome = await with_timeout(
            args.timeout,
            follow_change(command, pump, queued, what),
            lambda: (
                f"the {what} did not finish within {args.timeout:g} s (it goes on without "
                "this command; see promenade status)"
            ),
        )
    if command.out.json_mode:
        command.out.json(current)
    if outcome == "failed":
        state = (
            f"{environment['name']} keeps revision {current['revision']}"
            if current["status"] == "ACTIVE"
            else f"{environment['name']} is {current['status']}"
        )
        command.out.error(
            f"the {what} failed ({state}): {current['lastError'] or 'no reason given'}"
        )
        return EXIT_FAILED
    build = current["build"]
    command.out.line(
        (f"{integration['name']} {build['version'] if build else ''} is ", None),
        styled(current["status"]),
        f" in {environment['name']} (revision {current['revision']})",
        f": {current['endpointUrl']}" if current["endpointUrl"] else "",
    )
    return 0


async def _refusable(send: Callable[[], Awaitable[Deployment]], what: str) -> Deployment:
    try:
        return await send()
    except Refused as exc:
        raise usage(f"the {what} was refused ({exc.typename}): {exc.detail()}") from None
    except RequestFailed as exc:
        raise usage(f"the {what} was refused: {exc}") from None


async def deploy(command: Command) -> int:
    args = command.args
    integration = await resolve_integration(command, args.integration)
    environment = (
        resolve_environment(integration, args.env, "--env")
        if args.env
        else first_environment(integration)
    )
    entries = configuration_entries(command, integration)
    build = await command.api.find_build(integration["id"], args.build)
    if build is None:
        raise NotFound(
            f"no build {args.build!r} of {integration_label(integration)} (builds are made "
            "with the createBuild mutation)"
        )
    request: DeployInput = {
        "integrationId": integration["id"],
        "buildId": build["id"],
        "environmentId": environment["id"],
        "configuration": entries,
        "idempotencyKey": str(uuid.uuid4()),
    }
    return await _send_change(
        command,
        integration,
        environment,
        lambda: command.api.deploy(request),
        f"deploy of {build['version']} to {environment['name']}",
    )


async def rollback(command: Command) -> int:
    args = command.args
    integration = await resolve_integration(command, args.integration)
    environment = resolve_environment(integration, args.env, "--env")
    deployment = await command.api.deployment_in(integration["id"], environment["id"])
    if deployment is None or deployment["status"] == "NOT_DEPLOYED":
        raise ClientError(
            f"{integration_label(integration)} is not deployed in {environment['name']}: "
            "nothing to roll back"
        )
    request: RollbackInput = {"deploymentId": deployment["id"], "revision": args.revision}
    target = f"revision {args.revision}" if args.revision else "the previous revision"
    return await _send_change(
        command,
        integration,
        environment,
        lambda: command.api.rollback(request),
        f"rollback of {environment['name']} to {target}",
    )


# ---- logs --------------------------------------------------------------------------------------


async def logs(command: Command) -> int:
    """The deployment's last lines of output, read from its data plane through the API (from
    any machine: the API asks a worker of the data plane)."""
    args = command.args
    integration = await resolve_integration(command, args.integration)
    environment = resolve_environment(integration, args.env, "--env")
    found = await command.api.deployment_logs(integration["id"], environment["id"], args.lines)
    if found is None:
        raise NotFound(
            f"{integration_label(integration)} has no deployment in {environment['name']}"
        )
    deployment_id, lines = found
    if command.out.json_mode:
        command.out.json(
            {"deploymentId": deployment_id, "environment": environment["name"], "lines": lines}
        )
        return 0
    if not lines:
        command.out.error(
            f"{integration_label(integration)} in {environment['name']} has written no output"
        )
        return 0
    # As the integration wrote them: no markup, no colors.
    command.out.stdout.write("".join(f"{line}\n" for line in lines))
    command.out.stdout.flush()
    return 0
