"""The client commands of ``promenade``: ``env list``, ``status``, ``promote``, ``deploy``,
``rollback`` and ``logs``, talking to the API at PROMENADE_URL (or ``--url``) with the token
PROMENADE_TOKEN (or ``--token``).

Output: rich tables and a live progress display on a terminal (colors only there), plain
columns and one line per status in a pipe, and ``--json`` for scripts (one JSON document on
stdout). Errors are one line on stderr; the exit code is 0 on success, 1 on a failure (a failed
promotion, an unreachable server, a refused token, something not found) and 2 when the request
was refused before anything changed (blockers, missing configuration, bad input).

Values given with ``--secret`` never appear in any output: the plan masks their keys, and
every line printed is scrubbed of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, TextIO, TypeVar

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from app.client.api import (
    FINAL_PROMOTION_STATUSES,
    ConfigChange,
    ConfigEntry,
    DeployInput,
    Deployment,
    DeploymentEvent,
    Environment,
    Integration,
    PromenadeAPI,
    PromoteInput,
    Promotion,
    PromotionEvent,
    PromotionPlan,
    RollbackInput,
)
from app.client.errors import (
    ClientError,
    ConnectionLost,
    NotFound,
    Refused,
    RequestFailed,
    RequestFiled,
    ServerUnreachable,
)
from app.client.transport import DEFAULT_URL, GraphQLClient
from app.services.errors import Blocker
from app.settings import Settings

EXIT_FAILED = 1
EXIT_REFUSED = 2
SECRET_MASK = "********"
# Shorter --secret values are masked where they belong (their keys), not in free text, where
# hiding every "1" would garble the output.
MIN_SCRUBBED_LENGTH = 4
# While following a change, the deployment is read again at least this often: an event is
# only a hint to look (the subscription may start after the change's first event).
POLL_INTERVAL_S = 2.0
# How long to wait for the deploymentEvents subscription before sending the change anyway.
SUBSCRIBE_WAIT_S = 5.0
# Reconnects of promotionStatus after a lost connection, before giving up.
MAX_RECONNECTS = 5

STATUS_STYLES = {
    "ACTIVE": "green",
    "SUCCEEDED": "bold green",
    "IN_PROGRESS": "yellow",
    "QUEUED": "yellow",
    "APPLYING_CONFIGURATION": "yellow",
    "RESTARTING": "yellow",
    "PENDING_APPROVAL": "magenta",
    "SUSPENDED": "magenta",
    "NOT_DEPLOYED": "dim",
    "ERROR": "bold red",
    "FAILED": "bold red",
    "REJECTED": "red",
    "CANCELLED": "red",
    "EXPIRED": "red",
}

BLOCKERS: dict[str, str] = {
    Blocker.SOURCE_NOT_ACTIVE: "nothing is ACTIVE in {source} to promote",
    Blocker.NOT_NEXT_ENVIRONMENT: "{target} is not the environment after {source} in the pipeline",
    Blocker.ENVIRONMENT_NOT_IN_PIPELINE: "an environment is not in the project's pipeline",
    Blocker.TARGET_FROZEN: "{target} is frozen",
    Blocker.MISSING_CONFIGURATION: "{target} lacks required configuration",
    Blocker.REQUEST_ALREADY_PENDING: "a request to promote to {target} is already pending",
}

Cell = str | tuple[str, str | None]
T = TypeVar("T")


# ---- output ------------------------------------------------------------------------------------


class Output:
    """Everything a command prints goes through here: a terminal gets rich, a pipe plain text,
    ``--json`` one document; every string is scrubbed of the secrets it was told about."""

    def __init__(
        self, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.json_mode = json_mode
        self.tty = self.stdout.isatty()
        self.console = Console(file=self.stdout, highlight=False) if self.tty else None
        self._secrets: list[str] = []

    def add_secrets(self, values: Iterable[str]) -> None:
        for value in values:
            if len(value) >= MIN_SCRUBBED_LENGTH and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, SECRET_MASK)
        return text

    def _scrub_data(self, value: object) -> object:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {key: self._scrub_data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._scrub_data(item) for item in value]
        return value

    def json(self, value: object) -> None:
        self.stdout.write(json.dumps(self._scrub_data(value), indent=2, ensure_ascii=False))
        self.stdout.write("\n")
        self.stdout.flush()

    def line(self, *parts: Cell) -> None:
        """One line of text (nothing in JSON mode); ``(text, style)`` parts are colored on a
        terminal."""
        if self.json_mode:
            return
        if self.console is not None:
            self.console.print(self._text(parts), soft_wrap=True)
        else:
            self.stdout.write(self.scrub("".join(_plain(part) for part in parts)) + "\n")
            self.stdout.flush()

    def _text(self, parts: Sequence[Cell]) -> Text:
        text = Text()
        for part in parts:
            content, style = (part, None) if isinstance(part, str) else part
            text.append(self.scrub(content), style=style or "")
        return text

    def error(self, message: str) -> None:
        self.stderr.write(f"promenade: {self.scrub(message)}\n")
        self.stderr.flush()

    def warn(self, message: str) -> None:
        self.stderr.write(f"promenade: warning: {self.scrub(message)}\n")
        self.stderr.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Cell]], title: str) -> None:
        """Rows under column headers: a rich table on a terminal, aligned plain columns in a
        pipe (an empty cell is ``-``, so that every row splits into as many fields)."""
        if self.json_mode:
            return
        if self.console is not None:
            table = Table(title=self.scrub(title), title_justify="left", header_style="bold")
            for index, column in enumerate(columns):
                # The last column (free text) wraps; the others keep their values whole.
                table.add_column(column, no_wrap=index < len(columns) - 1)
            for row in rows:
                table.add_row(*(self._text([cell]) for cell in row))
            self.console.print(table)
            return
        cells = [list(columns)] + [
            [self.scrub(_plain(cell)).replace("\n", " ") or "-" for cell in row] for row in rows
        ]
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for row in cells:
            padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
            self.stdout.write("  ".join([*padded, row[-1]]).rstrip() + "\n")
        self.stdout.flush()


def _plain(cell: Cell) -> str:
    return cell if isinstance(cell, str) else cell[0]


def _styled(status: str) -> tuple[str, str | None]:
    return (status, STATUS_STYLES.get(status))


class Progress:
    """A live display of a change: a spinner with the current status on a terminal (each status
    reached printed above it), one line per status in a pipe, nothing with ``--json``."""

    def __init__(self, out: Output, title: str) -> None:
        self.out = out
        self.title = title
        self._status: Status | None = None

    def __enter__(self) -> Progress:
        if self.out.console is not None and not self.out.json_mode:
            self._status = self.out.console.status(self.out.scrub(self.title), spinner="dots")
            self._status.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._status is not None:
            self._status.stop()

    def step(self, status: str, detail: str | None, at: str | None = None) -> None:
        if self.out.json_mode:
            return
        # One line per status: a long reason is printed in full at the end.
        suffix = f"  {_first_line(detail)}" if detail else ""
        if self.out.console is None:
            self.out.line(status, suffix)
            return
        clock = f"{_clock(at)} " if at else ""
        self.out.line((clock, "dim"), _styled(status), suffix)
        if self._status is not None:
            self._status.update(self.out.scrub(f"{self.title}: {status}{suffix}"))


def _clock(at: str) -> str:
    try:
        return _parse_time(at).astimezone().strftime("%H:%M:%S")
    except ValueError:
        return at


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


# ---- running a command -------------------------------------------------------------------------


class Command:
    """What every command gets: the API, the output, the settings and the arguments."""

    def __init__(
        self, api: PromenadeAPI, out: Output, settings: Settings, args: argparse.Namespace
    ) -> None:
        self.api = api
        self.out = out
        self.settings = settings
        self.args = args
        self._secrets: dict[str, str] | None = None

    def secrets(self) -> dict[str, str]:
        """The values of ``--secret KEY`` (standard input, or a prompt on a terminal) and
        ``--secret-env KEY=VARIABLE``, read once."""
        if self._secrets is None:
            self._secrets = read_secrets(
                getattr(self.args, "secret", None), getattr(self.args, "secret_env", None)
            )
        return self._secrets


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the client command ``args.client_command``; its exit code."""
    out = Output(json_mode=bool(getattr(args, "json", False)))
    try:
        url = args.url or os.environ.get("PROMENADE_URL") or DEFAULT_URL
        token = args.token or os.environ.get("PROMENADE_TOKEN")
        if args.token:
            out.warn(
                "--token puts the token on the command line, where other users of this machine "
                "can read it (ps); set PROMENADE_TOKEN instead"
            )
        if not token:
            raise ClientError(
                "no API token: set PROMENADE_TOKEN or pass --token (promenade up prints one "
                "on its first start; promenade bootstrap makes more)"
            )
        async with GraphQLClient(url, token) as client:
            command = Command(PromenadeAPI(client), out, settings, args)
            return await COMMANDS[args.client_command](command)
    except ClientError as exc:
        out.error(str(exc))
        return exc.exit_code


# ---- resolving names ---------------------------------------------------------------------------


async def organization_slug(command: Command) -> str:
    """``--org``, or the viewer's only organization."""
    slugs = [organization["slug"] for organization in await command.api.organizations()]
    wanted: str | None = command.args.org
    if wanted:
        if wanted not in slugs:
            raise NotFound(f"no organization {wanted!r} among yours ({', '.join(slugs) or 'none'})")
        return wanted
    if len(slugs) == 1:
        return slugs[0]
    if not slugs:
        raise ClientError("your user belongs to no organization")
    error = ClientError(f"you belong to several organizations ({', '.join(slugs)}): pass --org")
    error.exit_code = EXIT_REFUSED
    raise error


async def resolve_integration(command: Command, reference: str) -> Integration:
    """An integration by id, or by ``project-slug/integration-slug`` in the organization."""
    if "/" in reference:
        project_slug, _, integration_slug = reference.partition("/")
        if not project_slug or not integration_slug or "/" in integration_slug:
            raise _usage(f"INTEGRATION is an id or PROJECT/INTEGRATION (slugs), not {reference!r}")
        organization = await organization_slug(command)
        project_id = await command.api.find_project(organization, project_slug)
        if project_id is None:
            raise NotFound(f"no project {project_slug!r} in organization {organization!r}")
        integration_id = await command.api.find_integration(project_id, integration_slug)
        if integration_id is None:
            raise NotFound(f"no integration {integration_slug!r} in project {project_slug!r}")
    else:
        integration_id = reference
    integration = await command.api.integration(integration_id)
    if integration is None:
        raise NotFound(f"no integration {reference!r} (give its id or PROJECT/INTEGRATION slugs)")
    return integration


def resolve_environment(integration: Integration, reference: str, option: str) -> Environment:
    """An environment of the integration's organization, by id or name (any case)."""
    organization = integration["project"]["organization"]
    environments = organization["environments"]
    for environment in environments:
        if environment["id"] == reference:
            return environment
    for environment in environments:
        if environment["name"].casefold() == reference.casefold():
            return environment
    names = ", ".join(environment["name"] for environment in environments)
    raise NotFound(
        f"{option}: no environment {reference!r} in organization {organization['slug']!r} "
        f"(its environments: {names})"
    )


def first_environment(integration: Integration) -> Environment:
    stages = integration["project"]["pipeline"]["environments"]
    if not stages:
        raise ClientError(f"the pipeline of project {integration['project']['slug']!r} is empty")
    return resolve_environment(integration, stages[0]["id"], "--env")


def _usage(message: str) -> ClientError:
    error = ClientError(message)
    error.exit_code = EXIT_REFUSED
    return error


def parse_pairs(values: Sequence[str] | None, option: str, *, secret: bool) -> dict[str, str]:
    """``KEY=VALUE`` arguments; a malformed ``--secret`` is reported without its text."""
    pairs: dict[str, str] = {}
    for value in values or ():
        key, sep, item = value.partition("=")
        key = key.strip()
        if not sep or not key:
            shown = "" if secret else f", not {value!r}"
            raise _usage(f"{option} takes KEY=VALUE{shown}")
        if key in pairs:
            raise _usage(f"{option}: {key} is given twice")
        pairs[key] = item
    return pairs


def read_secrets(keys: Sequence[str] | None, from_env: Sequence[str] | None) -> dict[str, str]:
    """Secret values that never pass through the command line, where any user of the machine
    could read them (``ps``)."""
    secrets: dict[str, str] = {}
    for key in keys or ():
        if "=" in key:
            raise _usage(
                "--secret takes a KEY only: its value comes from standard input or a prompt "
                "(or use --secret-env KEY=VARIABLE), never from the command line, where other "
                "users of the machine can read it"
            )
        key = key.strip()
        if not key or key in secrets:
            raise _usage(f"--secret: {key or 'a key'} is empty or given twice")
        if sys.stdin.isatty():
            secrets[key] = getpass.getpass(f"{key} (secret): ")
        else:
            line = sys.stdin.readline()
            if not line:
                raise _usage(f"--secret {key}: standard input has no line for its value")
            secrets[key] = line.removesuffix("\n").removesuffix("\r")
    for key, variable in parse_pairs(from_env, "--secret-env", secret=False).items():
        if key in secrets:
            raise _usage(f"--secret-env: {key} is given twice")
        if variable not in os.environ:
            raise _usage(f"--secret-env {key}: the environment has no variable {variable}")
        secrets[key] = os.environ[variable]
    return secrets


def configuration_entries(command: Command, integration: Integration) -> list[ConfigEntry]:
    """``--set`` and the secrets as configuration entries; their secret values are registered
    with the output so that they are never printed."""
    plain = parse_pairs(command.args.set, "--set", secret=False)
    secrets = command.secrets()
    if both := sorted(plain.keys() & secrets.keys()):
        raise _usage(f"{', '.join(both)}: given with both --set and --secret")
    schema_secrets = {key["key"] for key in integration["configSchema"] if key["secret"]}
    command.out.add_secrets(secrets.values())
    command.out.add_secrets(value for key, value in plain.items() if key in schema_secrets)
    if given := sorted(plain.keys() & schema_secrets):
        raise _usage(
            f"{', '.join(given)}: secret in the integration's schema, so not with --set, which "
            "puts its value where other users of the machine can read it: use --secret KEY "
            "(standard input or a prompt) or --secret-env KEY=VARIABLE; nothing was changed"
        )
    values = {**plain, **secrets}
    return [{"key": key, "value": value} for key, value in values.items()]


def secret_keys(command: Command, integration: Integration) -> set[str]:
    keys = {key["key"] for key in integration["configSchema"] if key["secret"]}
    return keys | set(command.secrets())


def integration_label(integration: Integration) -> str:
    return f"{integration['project']['slug']}/{integration['slug']}"


# ---- env list ----------------------------------------------------------------------------------


async def env_list(command: Command) -> int:
    slug = await organization_slug(command)
    organization = await command.api.organization_environments(slug)
    if organization is None:
        raise NotFound(f"no organization {slug!r}")
    environments = organization["environments"]
    if command.out.json_mode:
        command.out.json(
            {
                "organization": {
                    "id": organization["id"],
                    "slug": organization["slug"],
                    "name": organization["name"],
                },
                "environments": environments,
            }
        )
        return 0
    rows: list[list[Cell]] = []
    for environment in environments:
        plane = environment["dataPlane"]
        frozen: Cell = "no"
        if environment["frozen"]:
            reason = environment["freezeReason"]
            frozen = (f"yes: {reason}" if reason else "yes", "bold cyan")
        rows.append(
            [
                str(environment["position"]),
                (environment["name"], "bold"),
                environment["dnsPrefix"],
                ("yes", "bold red") if environment["critical"] else "no",
                f"{plane['name']} ({plane['runtime']})",
                frozen,
            ]
        )
    command.out.table(
        ["#", "NAME", "DNS PREFIX", "CRITICAL", "DATA PLANE", "FROZEN"],
        rows,
        title=f"Environments of {organization['name']} ({organization['slug']})",
    )
    return 0


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
                _styled(deployment["status"]),
                build["version"] if build else "",
                str(deployment["revision"]) if deployment["revision"] else "",
                deployment["endpointUrl"] or "",
                ("yes", "yellow") if deployment["restartRequired"] else "no",
                (",".join(deployment["missingConfiguration"]), "red"),
                (_first_line(error) if error else "", "red"),
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


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    if not lines:
        return ""
    return lines[0] + (" (...)" if len(lines) > 1 else "")


# ---- promote -----------------------------------------------------------------------------------


async def promote(command: Command) -> int:
    args = command.args
    integration = await resolve_integration(command, args.integration)
    source = resolve_environment(integration, args.source, "--from")
    target = resolve_environment(integration, args.target, "--to") if args.target else None
    overrides = configuration_entries(command, integration)
    masked = secret_keys(command, integration)
    request: PromoteInput = {
        "integrationId": integration["id"],
        "sourceEnvironmentId": source["id"],
        "targetEnvironmentId": target["id"] if target else None,
        "overrides": overrides,
        "copySourceConfiguration": bool(args.copy_config),
        "message": args.message,
        "idempotencyKey": str(uuid.uuid4()),
    }
    try:
        found = await command.api.promotion_plan(request)
    except RequestFailed as exc:
        raise _usage(f"cannot promote {integration_label(integration)}: {exc}") from None
    if found is None:
        raise NotFound(f"cannot plan the promotion of {integration_label(integration)}")
    plan = mask_plan(found, masked)
    show_plan(command.out, integration, plan)
    if plan["blockers"] or plan["missingConfiguration"]:
        if command.out.json_mode:
            command.out.json({"plan": plan, "promotion": None})
        raise _usage(refusal(integration, plan))
    try:
        promotion = await command.api.promote(request)
    except Refused as exc:
        if command.out.json_mode:
            command.out.json({"plan": plan, "promotion": None})
        raise _usage(f"promotion refused ({exc.typename}): {_refusal_detail(exc)}") from None
    if not args.wait:
        if command.out.json_mode:
            command.out.json({"plan": plan, "promotion": promotion})
        else:
            command.out.line(
                f"Promotion {promotion['id']}: ",
                _styled(promotion["status"]),
                " (follow it with --wait, or query promotion(id))",
            )
        return 0
    final = await _with_timeout(
        args.timeout,
        follow_promotion(command, promotion),
        lambda: (
            f"promotion {promotion['id']} did not finish within {args.timeout:g} s "
            "(it goes on without this command)"
        ),
    )
    if command.out.json_mode:
        command.out.json({"plan": plan, "promotion": final})
    if final["status"] == "SUCCEEDED":
        command.out.line(
            ("Promoted ", "bold green"),
            f"{integration['name']} {final['build']['version']} from "
            f"{final['sourceEnvironment']['name']} to {final['targetEnvironment']['name']}",
        )
        return 0
    command.out.error(f"promotion {final['id']} {final['status']}: {promotion_reason(final)}")
    return EXIT_FAILED


def mask_plan(plan: PromotionPlan, keys: set[str]) -> PromotionPlan:
    """The plan with the values of secret keys (the schema's, and every ``--secret`` key)
    taken out."""
    changes = []
    for change in plan["configurationChanges"]:
        if change["secret"] or change["key"] in keys:
            change = {**change, "secret": True, "before": None, "after": None}
        changes.append(change)
    return {**plan, "configurationChanges": changes}


def show_plan(out: Output, integration: Integration, plan: PromotionPlan) -> None:
    build = plan["build"]
    version = build["version"] if build else "(nothing to promote)"
    out.line(
        ("Plan: ", "bold"),
        f"{integration['name']} ",
        (version, "bold"),
        f" from {plan['sourceEnvironment']['name']} to ",
        (plan["targetEnvironment"]["name"], "bold"),
        (" (approval required)", "magenta") if plan["requiresApproval"] else "",
    )
    unchanged = 0
    for change in plan["configurationChanges"]:
        kind = change["kind"]
        if kind == "UNCHANGED":
            unchanged += 1
            continue
        before, after = _shown(change["before"], change), _shown(change["after"], change)
        if kind == "ADDED":
            out.line(("  + ", "green"), change["key"], f" = {after}")
        elif kind == "REMOVED":
            out.line(("  - ", "red"), change["key"], " (removed)")
        elif change["secret"]:
            out.line(("  ~ ", "yellow"), change["key"], " (secret, changed)")
        else:
            out.line(("  ~ ", "yellow"), change["key"], f": {before} -> {after}")
    if unchanged:
        out.line(("  ", None), (f"{unchanged} configuration value(s) unchanged", "dim"))
    if not plan["configurationChanges"]:
        out.line(("  no configuration changes", "dim"))
    if plan["missingConfiguration"]:
        out.line(("  missing: ", "bold red"), ", ".join(plan["missingConfiguration"]))
    if plan["blockers"]:
        out.line(("  blockers: ", "bold red"), ", ".join(plan["blockers"]))


def _shown(value: str | None, change: ConfigChange) -> str:
    if change["secret"]:
        return "(secret)"
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def refusal(integration: Integration, plan: PromotionPlan) -> str:
    source = plan["sourceEnvironment"]["name"]
    target = plan["targetEnvironment"]["name"]
    reasons = []
    for blocker in plan["blockers"]:
        text = BLOCKERS.get(blocker, blocker).format(source=source, target=target)
        if blocker == Blocker.MISSING_CONFIGURATION and plan["missingConfiguration"]:
            text += ": " + ", ".join(plan["missingConfiguration"])
        reasons.append(text)
    if plan["missingConfiguration"] and Blocker.MISSING_CONFIGURATION not in plan["blockers"]:
        reasons.append(
            f"{target} lacks required configuration: {', '.join(plan['missingConfiguration'])}"
        )
    hint = ""
    if plan["missingConfiguration"]:
        hint = " (give values with --set KEY=VALUE or --secret KEY=VALUE, or --copy-config)"
    return (
        f"cannot promote {integration_label(integration)} from {source} to {target}: "
        + "; ".join(reasons)
        + hint
    )


def _refusal_detail(exc: Refused) -> str:
    text = str(exc)
    if exc.missing_keys:
        text += f" (missing: {', '.join(exc.missing_keys)})"
    if exc.blockers:
        text += f" (blockers: {', '.join(exc.blockers)})"
    return text


def promotion_reason(promotion: Promotion) -> str:
    if promotion["error"]:
        return promotion["error"]
    for event in reversed(promotion["events"]):
        if event["detail"]:
            return event["detail"]
    return f"the promotion ended {promotion['status']}"


async def follow_promotion(command: Command, promotion: Promotion) -> Promotion:
    """Follow the promotion through the promotionStatus subscription until a final status
    (reconnecting when the connection drops); the promotion as it ended."""
    title = f"Promoting {promotion['build']['version']} to {promotion['targetEnvironment']['name']}"
    seen: set[tuple[str, str]] = set()
    connected = False
    reconnects = 0
    with Progress(command.out, title) as progress:
        for event in promotion["events"]:
            _show_once(seen, event, progress)
        while True:
            try:
                async with contextlib.aclosing(
                    command.api.promotion_status(promotion["id"])
                ) as events:
                    first = True
                    async for event in events:
                        connected, reconnects = True, 0
                        if first and (event["at"], event["status"]) not in seen:
                            # The subscription starts at the current status: show the ones
                            # reached before it, in order.
                            await _catch_up(command, promotion["id"], event, seen, progress)
                        first = False
                        _show_once(seen, event, progress)
                        if event["status"] in FINAL_PROMOTION_STATUSES:
                            return await command.api.promotion(promotion["id"])
            except (ConnectionLost, ServerUnreachable):
                if not connected or reconnects >= MAX_RECONNECTS:
                    raise
                reconnects += 1
                await asyncio.sleep(min(0.25 * 2**reconnects, 5.0))
                continue
            # Completed without a final status in sight: look, and follow again if need be.
            current = await command.api.promotion(promotion["id"])
            if current["status"] in FINAL_PROMOTION_STATUSES:
                for event in current["events"]:
                    _show_once(seen, event, progress)
                return current


async def _catch_up(
    command: Command,
    promotion_id: str,
    first: PromotionEvent,
    seen: set[tuple[str, str]],
    progress: Progress,
) -> None:
    before = _parse_time(first["at"])
    for event in (await command.api.promotion(promotion_id))["events"]:
        if _parse_time(event["at"]) < before:
            _show_once(seen, event, progress)


def _show_once(seen: set[tuple[str, str]], event: PromotionEvent, progress: Progress) -> bool:
    key = (event["at"], event["status"])
    if key in seen:
        return False
    seen.add(key)
    progress.step(event["status"], event["detail"], event["at"])
    return True


async def _with_timeout(
    timeout_s: float | None, work: Awaitable[T], message: Callable[[], str]
) -> T:
    if timeout_s is None:
        return await work
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError:
        raise ClientError(message()) from None


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
    later = _parse_time(current["updatedAt"]) > _parse_time(queued["updatedAt"])
    if later and (current["lastError"] or current["status"] == "ERROR"):
        return "failed"
    return None


async def follow_change(
    command: Command, pump: EventPump, queued: Deployment, what: str
) -> tuple[Deployment, Outcome]:
    """Show the deployment's events until the change queued as ``queued`` has been applied or
    has failed; the deployment then, and which it was."""
    title = _sentence(what)
    queued_at = _parse_time(queued["updatedAt"])
    with Progress(command.out, title) as progress:
        progress.step(queued["status"], f"{what} queued", queued["updatedAt"])
        while True:
            event = await pump.next(POLL_INTERVAL_S)
            if (
                event is not None
                and event["deploymentId"] == queued["id"]
                and _parse_time(event["at"]) > queued_at  # the queued one is shown already
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
                _styled(deployment["status"]),
                " (follow it with --wait or promenade status)",
            )
        return 0
    async with EventPump(
        command.api, environment_id=environment["id"], integration_id=integration["id"]
    ) as pump:
        queued = await _refusable(send, what)
        current, outcome = await _with_timeout(
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
        _styled(current["status"]),
        f" in {environment['name']} (revision {current['revision']})",
        f": {current['endpointUrl']}" if current["endpointUrl"] else "",
    )
    return 0


async def _refusable(send: Callable[[], Awaitable[Deployment]], what: str) -> Deployment:
    try:
        return await send()
    except Refused as exc:
        raise _usage(f"the {what} was refused ({exc.typename}): {_refusal_detail(exc)}") from None
    except RequestFailed as exc:
        raise _usage(f"the {what} was refused: {exc}") from None


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


COMMANDS: dict[str, Callable[[Command], Awaitable[int]]] = {
    "env-list": env_list,
    "status": status,
    "promote": promote,
    "deploy": deploy,
    "rollback": rollback,
    "logs": logs,
}
