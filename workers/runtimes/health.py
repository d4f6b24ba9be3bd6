"""Waiting for a new instance to answer its health check, for every runtime."""

from __future__ import annotations

import asyncio
import functools
import signal
import ssl
from collections.abc import Awaitable, Callable

import httpx

from workers.runtimes.base import InstanceSpec, StartFailed

# Health polls start fast (a small service answers within ~100 ms) and back off to this.
HEALTH_POLL_MAX_S = 0.5
# The longest one health request may take.
REQUEST_TIMEOUT_S = 5.0


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Made once: health checks are plain HTTP, but httpx builds a verifying TLS context for
    every client (loading the CA bundle: tens of milliseconds of CPU per restart)."""
    return ssl.create_default_context()


async def wait_healthy(
    spec: InstanceSpec, *, address: str, exit_status: Callable[[], Awaitable[str | None]]
) -> None:
    """Return once ``GET http://<address><spec.health_path>`` answers 2xx. ``exit_status()``
    says how the instance ended, or None while it runs: once it has ended, or when the spec's
    health timeout passed, StartFailed says why (the caller stops what is left and adds the
    instance's last output).

    A loop, not tenacity: it polls two things (the process, its answer) against one deadline
    that cuts both the pauses and each request short, so that it gives up at the timeout, not
    before it and not after. tenacity's stops give up early (``stop_before_delay``) or run past
    it (``stop_after_delay``), and with the request cut to what was left, a last try of a few
    milliseconds timed out and replaced the instance's answer (HTTP 503) in the reason."""
    path, timeout_s = spec.health_path, spec.health_timeout_s
    path = path if path.startswith("/") else f"/{path}"
    url = f"http://{address}{path}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last_answer = "was not tried"
    last_body: list[str] = []
    answered = False
    pause = 0.05
    # trust_env off: an HTTP(S)_PROXY of the worker must not stand between it and localhost.
    async with httpx.AsyncClient(trust_env=False, verify=_tls_context()) as client:
        while True:
            ended = await exit_status()
            if ended is not None:
                raise StartFailed(ended)
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            budget = min(remaining, REQUEST_TIMEOUT_S)
            try:
                answer = await client.get(url, timeout=budget)
            except httpx.ConnectError:
                last_answer = f"found nothing listening on {address} (does it listen on $PORT?)"
                last_body = []
            except httpx.TimeoutException as exc:
                # A try the deadline cut short (on a busy machine, to a few milliseconds) says
                # less than what the instance answered before it.
                if not answered or budget >= REQUEST_TIMEOUT_S:
                    last_answer = f"failed: {_describe_error(exc)}"
                    last_body = []
            except httpx.HTTPError as exc:
                last_answer = f"failed: {_describe_error(exc)}"
                last_body = []
            else:
                if answer.is_success:
                    return
                answered = True
                last_answer = f"answered HTTP {answer.status_code}"
                # What the instance wrote is output: with its output lines, not in the reason.
                body = " ".join(answer.text.split())[:200]
                last_body = [f"GET {path} answered: {body}"] if body else []
            await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
            pause = min(pause * 2, HEALTH_POLL_MAX_S)
    raise StartFailed(
        f"did not become healthy within {timeout_s:g}s: GET {path} {last_answer}", last_body
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
