"""The ``promenade`` command: run the control plane, migrate, bootstrap users."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import uvloop
from cryptography.fernet import Fernet

from app.services.errors import DomainError
from app.settings import Settings, SettingsError, load_settings

Command = Callable[[Settings, argparse.Namespace], Awaitable[None]]


def _server(module: str, name: str) -> Command:
    """A server-side command of app/processes/<module>.py, imported when it runs."""

    async def run(settings: Settings, args: argparse.Namespace) -> None:
        command: Command = getattr(importlib.import_module(f"app.processes.{module}"), name)
        await command(settings, args)

    return run


def run(command: Coroutine[Any, Any, None], *, event_loop: str) -> None:
    """Run a command to its end on a new event loop of the configured kind."""
    factory = uvloop.new_event_loop if event_loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(command)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "secret-key":
            print(Fernet.generate_key().decode())
            return
        run(args.run(settings, args), event_loop=settings.event_loop)
    except (SettingsError, DomainError) as exc:
        print(f"promenade: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promenade", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser(
        "up",
        help="run everything in one process on embedded defaults "
        "(SQLite in the data directory, the in-process bus)",
    )
    up.set_defaults(run=_server("embedded", "run_up"))
    api = commands.add_parser("api", help="run the GraphQL API (scaled mode: migrate first)")
    api.set_defaults(run=_server("api", "run_api"))
    for command in (up, api):
        command.add_argument("--host", help="overrides PROMENADE_HOST")
        command.add_argument("--port", type=int, help="overrides PROMENADE_PORT")

    worker = commands.add_parser(
        "worker", help="consume a data plane's commands from RabbitMQ (scaled mode)"
    )
    worker.add_argument(
        "--data-plane",
        action="append",
        metavar="PLANE",
        help="a data plane to serve: local (the installation's own, the default), a data "
        "plane id, or ORGANIZATION/NAME; repeat it for more",
    )
    worker.add_argument("--concurrency", type=int, default=4, help="changes at once (default 4)")
    worker.add_argument(
        "--no-gateway",
        dest="gateway",
        action="store_false",
        help="do not serve the LOCAL_PROCESS gateway in this process",
    )
    worker.set_defaults(run=_server("worker", "run_worker"))
    commands.add_parser("gateway", help="serve the LOCAL_PROCESS gateway alone").set_defaults(
        run=_server("gateway", "run_gateway")
    )

    commands.add_parser("migrate", help="apply database migrations").set_defaults(
        run=_server("maintenance", "run_migrate")
    )

    boot = commands.add_parser(
        "bootstrap", help="create a user (and organization) if missing and print a new token"
    )
    boot.add_argument("--email", required=True)
    boot.add_argument("--name", help="the user's name when the user is new")
    boot.add_argument("--org", help="organization slug; created, with the user as ADMIN, if new")
    boot.set_defaults(run=_server("maintenance", "run_bootstrap"))

    commands.add_parser("secret-key", help="print a new PROMENADE_SECRET_KEY")
    rotate = commands.add_parser(
        "rotate-key",
        help="re-encrypt every secret with the current key (PROMENADE_SECRET_KEY), opening "
        "with PROMENADE_PREVIOUS_SECRET_KEYS what it cannot",
    )
    rotate.add_argument(
        "--new-key",
        action="store_true",
        help="embedded mode: make a new current key in the data directory first",
    )
    rotate.set_defaults(run=_server("maintenance", "run_rotate_key"))
    _add_client_commands(commands)
    return parser


def _add_client_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The commands that talk to a running API (app/client/commands/)."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--url", help="the API (default: $PROMENADE_URL, else http://127.0.0.1:8000)"
    )
    client.add_argument("--token", help="an API token (default: $PROMENADE_TOKEN, preferred)")
    client.add_argument("--json", action="store_true", help="print JSON, for scripts")
    org = argparse.ArgumentParser(add_help=False)
    org.add_argument("--org", metavar="SLUG", help="the organization (default: your only one)")
    integration = argparse.ArgumentParser(add_help=False, parents=[client, org])
    integration.add_argument(
        "integration", metavar="INTEGRATION", help="an integration id, or PROJECT/INTEGRATION"
    )
    values = argparse.ArgumentParser(add_help=False)
    values.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a configuration value"
    )
    values.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="KEY",
        help="a secret value, read from standard input (one line per --secret, in order) or "
        "asked for on a terminal; never printed, never on the command line",
    )
    values.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="KEY=VARIABLE",
        help="a secret value taken from the environment variable VARIABLE",
    )
    wait = argparse.ArgumentParser(add_help=False)
    wait.add_argument("--wait", action="store_true", help="follow the change until it ends")
    wait.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="with --wait: give up waiting after"
    )

    env = commands.add_parser("env", help="environments of an organization")
    env_commands = env.add_subparsers(dest="env_command", required=True)
    env_commands.add_parser(
        "list", parents=[client, org], help="the environments, in order"
    ).set_defaults(run=_client, client_command="env-list")

    commands.add_parser(
        "status", parents=[integration], help="an integration in each environment of its pipeline"
    ).set_defaults(run=_client, client_command="status")

    promote = commands.add_parser(
        "promote",
        parents=[integration, values, wait],
        help="show the plan, then promote the build running in --from to the next environment",
    )
    promote.add_argument(
        "--from", dest="source", required=True, metavar="ENV", help="name (any case) or id"
    )
    promote.add_argument("--to", dest="target", metavar="ENV", help="default: the next one")
    promote.add_argument(
        "--copy-config",
        action="store_true",
        help="copy the source's non-secret values for keys the target has no value for",
    )
    promote.add_argument("--message", metavar="TEXT")
    promote.add_argument(
        "--wait-for-soak",
        action="store_true",
        help="when the build has not soaked in --from yet, schedule it for when it has",
    )
    promote.add_argument(
        "--emergency",
        metavar="REASON",
        help="break-glass (ADMINs): promote past a freeze or the approval policy, audited",
    )
    promote.set_defaults(run=_client, client_command="promote")

    retry = commands.add_parser(
        "retry",
        parents=[client, wait],
        help="promote a FAILED promotion's build again, with its overrides, to its target",
    )
    retry.add_argument("promotion", metavar="PROMOTION", help="the failed promotion's id")
    retry.set_defaults(run=_client, client_command="retry")

    deploy = commands.add_parser(
        "deploy",
        parents=[integration, values, wait],
        help="run a build in the first environment of the pipeline",
    )
    deploy.add_argument("--build", required=True, metavar="VERSION")
    deploy.add_argument("--env", metavar="ENV", help="default: the pipeline's first")
    deploy.set_defaults(run=_client, client_command="deploy")

    rollback = commands.add_parser(
        "rollback", parents=[integration, wait], help="re-apply an earlier revision"
    )
    rollback.add_argument("--env", required=True, metavar="ENV")
    rollback.add_argument(
        "--revision", type=int, metavar="N", help="default: the last one before the current"
    )
    rollback.set_defaults(run=_client, client_command="rollback")

    logs = commands.add_parser(
        "logs",
        parents=[integration],
        help="an integration's last lines of output in an environment (through the API)",
    )
    logs.add_argument("--env", required=True, metavar="ENV")
    logs.add_argument(
        "--lines", type=_positive, default=100, metavar="N", help="default: 100, at most 1000"
    )
    logs.set_defaults(run=_client, client_command="logs")

    compare = commands.add_parser(
        "compare",
        parents=[client, org],
        help="how two environments of a project differ: builds, and configuration keys "
        "(secrets are never compared)",
    )
    compare.add_argument("project", metavar="PROJECT", help="a project slug")
    compare.add_argument(
        "--env",
        action="append",
        required=True,
        metavar="ENV",
        help="name (any case) or id; give it twice: --env A --env B",
    )
    compare.set_defaults(run=_client, client_command="compare")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


async def _client(settings: Settings, args: argparse.Namespace) -> None:
    from app.client.commands import run

    code = await run(settings, args)
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
