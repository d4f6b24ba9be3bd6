"""Waiting for a new instance to answer its health check, for every runtime."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_before_delay, wait_exponential

from workers.runtimes.base import StartFailed

# Health checks start fast (a small service answers within ~100 ms) and back off to this.
HEALTH_POLL_MAX_S = 0.5


class _NotHealthy(Exception):
    """The instance runs but its health check did not answer 2xx: what happened instead."""

    def __init__(self, answer: str, output: list[str] | None = None) -> None:
        super().__init__(answer)
        self.answer = answer
        self.output = output or []


async def wait_healthy(
    *,
    address: str,
    path: str,
    timeout_s: float,
    exit_status: Callable[[], Awaitable[str | None]],
) -> None:
    """Return once ``GET http://<address><path>`` answers 2xx. ``exit_status()`` says how the
    instance ended, or None while it runs: once it has ended, or when ``timeout_s`` passed,
    StartFailed says why (the caller stops what is left and adds the instance's last output).

    The check is tried again, with backoff, until it answers or the next try would come after
    ``timeout_s``; an instance that ended is not tried again."""
    path = path if path.startswith("/") else f"/{path}"
    url = f"http://{address}{path}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    # trust_env off: an HTTP(S)_PROXY of the worker must not stand between it and localhost.
    async with httpx.AsyncClient(trust_env=False) as client:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_NotHealthy),
                wait=wait_exponential(multiplier=0.05, max=HEALTH_POLL_MAX_S),
                stop=stop_before_delay(timeout_s),
                reraise=True,
            ):
                with attempt:
                    ended = await exit_status()
                    if ended is not None:
                        raise StartFailed(ended)
                    remaining = max(deadline - loop.time(), 0.01)
                    await _answers(client, url, address, path, timeout_s=min(remaining, 5.0))
            return
        except _NotHealthy as not_healthy:
            last = not_healthy
    ended = await exit_status()
    if ended is not None:
        raise StartFailed(ended)
    raise StartFailed(
        f"did not become healthy within {timeout_s:g}s: GET {path} {last.answer}", last.output
    )


async def _answers(
    client: httpx.AsyncClient, url: str, address: str, path: str, *, timeout_s: float
) -> None:
    """Return when GET ``url`` answers 2xx; _NotHealthy says what it did instead."""
    try:
        answer = await client.get(url, timeout=timeout_s)
    except httpx.ConnectError:
        raise _NotHealthy(
            f"found nothing listening on {address} (does it listen on $PORT?)"
        ) from None
    except httpx.HTTPError as exc:
        raise _NotHealthy(f"failed: {_describe_error(exc)}") from None
    if answer.is_success:
        return
    # What the instance wrote is output: with its output lines, not in the reason.
    body = " ".join(answer.text.split())[:200]
    raise _NotHealthy(
        f"answered HTTP {answer.status_code}", [f"GET {path} answered: {body}"] if body else []
    )


def describe_exit(code: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        return f"was killed by signal {signal_name(-code)}"
    return f"exited with code {code}"


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _describe_error(exc: httpx.HTTPError) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
