"""The client commands of ``promenade``: ``env list``, ``status``, ``promote``, ``deploy``,
``rollback``, ``logs`` and ``compare``, talking to the API at PROMENADE_URL (or ``--url``)
with the token PROMENADE_TOKEN (or ``--token``).

Output: rich tables and a live progress display on a terminal (colors only there), plain
columns and one line per status in a pipe, and ``--json`` for scripts (one JSON document on
stdout). Errors are one line on stderr; the exit code is 0 on success, 1 on a failure (a failed
promotion, an unreachable server, a refused token, something not found) and 2 when the request
was refused before anything changed (blockers, missing configuration, bad input).

Values given with ``--secret`` never appear in any output: the plan masks their keys, and
every line printed is scrubbed of them.

Where each command is: ``env list`` in environments.py; ``status``, ``deploy``, ``rollback``
and ``logs`` in deployments.py; ``promote`` in promotions.py; ``compare`` in drift.py. What
they share: the output (output.py), the ``Command`` they get (context.py), names resolved
through the API (names.py), configuration values from the command line (configuration.py).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable

from app.client.api import PromenadeAPI
from app.client.commands.context import Command
from app.client.commands.deployments import deploy, logs, rollback, status
from app.client.commands.drift import compare
from app.client.commands.environments import env_list
from app.client.commands.output import Output
from app.client.commands.promotions import promote, retry
from app.client.errors import ClientError
from app.client.transport import DEFAULT_URL, GraphQLClient
from app.settings import Settings


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


COMMANDS: dict[str, Callable[[Command], Awaitable[int]]] = {
    "env-list": env_list,
    "status": status,
    "promote": promote,
    "retry": retry,
    "deploy": deploy,
    "rollback": rollback,
    "logs": logs,
    "compare": compare,
}
