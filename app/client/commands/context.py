"""What every command gets (``Command``: the API, the output, the settings, the arguments),
and a bound on how long it waits."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.client.api import PromenadeAPI
from app.client.commands.configuration import read_secrets
from app.client.commands.output import Output
from app.client.errors import ClientError
from app.settings import Settings

T = TypeVar("T")


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


async def with_timeout(
    timeout_s: float | None, work: Awaitable[T], message: Callable[[], str]
) -> T:
    if timeout_s is None:
        return await work
    try:
        async with asyncio.timeout(timeout_s):
            return await work
    except TimeoutError:
        raise ClientError(message()) from None
