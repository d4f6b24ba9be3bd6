"""Waiting for a new instance's health check: tried again until it answers 2xx, the instance
ends, or the timeout passes; the reason says which, and what the instance wrote stays output."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.processes import free_port
from workers.runtimes.base import InstanceSpec, StartFailed
from workers.runtimes.health import wait_healthy


def _spec(timeout_s: float) -> InstanceSpec:
    return InstanceSpec(
        deployment_id="dep_1",
        change_id="chg_1",
        artifact="python3 app.py",
        values={},
        health_path="healthz",
        health_timeout_s=timeout_s,
    )


async def _running() -> str | None:
    return None


@dataclass
class _Instance:
    """An HTTP server that answers 503 with a body ``unhealthy`` times, then 200; or, after
    ``answers_before_stalling`` answers (when set), reads requests and never answers."""

    address: str = ""
    unhealthy: int = 0
    answers_before_stalling: int | None = None


@pytest.fixture
async def instance() -> AsyncIterator[_Instance]:
    served = _Instance()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if served.answers_before_stalling is not None:
            if served.answers_before_stalling == 0:
                await reader.read()  # until the client gives up and closes its end
                writer.close()
                return
            served.answers_before_stalling -= 1
        status, body = "200 OK", b"ok"
        if served.unhealthy > 0:
            served.unhealthy -= 1
            status, body = "503 Service Unavailable", b"not yet: warming up"
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    served.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield served


async def test_it_is_tried_again_until_it_answers(instance: _Instance) -> None:
    instance.unhealthy = 3
    await wait_healthy(_spec(10), address=instance.address, exit_status=_running)
    assert instance.unhealthy == 0


async def test_the_last_answer_is_the_reason_and_its_body_is_output(instance: _Instance) -> None:
    instance.unhealthy = 1_000
    started = time.monotonic()
    with pytest.raises(StartFailed) as failure:
        await wait_healthy(_spec(1), address=instance.address, exit_status=_running)
    assert time.monotonic() - started < 1.5
    assert str(failure.value) == "did not become healthy within 1s: GET /healthz answered HTTP 503"
    assert failure.value.output == ["GET /healthz answered: not yet: warming up"]


async def test_a_last_try_cut_short_by_the_deadline_keeps_the_answer_before_it(
    instance: _Instance,
) -> None:
    """The instance answered 503, then stopped answering: the last try times out only because
    the deadline cut it short, and the reason is still the answer."""
    instance.unhealthy = 1_000
    instance.answers_before_stalling = 1
    with pytest.raises(StartFailed) as failure:
        await wait_healthy(_spec(1), address=instance.address, exit_status=_running)
    assert str(failure.value) == "did not become healthy within 1s: GET /healthz answered HTTP 503"


async def test_nothing_listening_says_so() -> None:
    port = free_port()
    with pytest.raises(StartFailed, match=f"found nothing listening on 127.0.0.1:{port}"):
        await wait_healthy(_spec(0.5), address=f"127.0.0.1:{port}", exit_status=_running)


async def test_an_instance_that_ended_is_not_tried_again() -> None:
    calls = 0

    async def ends_on_the_second_look() -> str | None:
        nonlocal calls
        calls += 1
        return "exited with code 3" if calls == 2 else None

    started = time.monotonic()
    with pytest.raises(StartFailed, match=r"^exited with code 3$"):
        await wait_healthy(
            _spec(10), address=f"127.0.0.1:{free_port()}", exit_status=ends_on_the_second_look
        )
    assert calls == 2 and time.monotonic() - started < 1
