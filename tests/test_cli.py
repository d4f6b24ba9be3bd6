"""The ``promenade`` command as an operator runs it: real processes on a SQLite data directory."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop

from app import cli
from tests.processes import PROMENADE, free_port, promenade_env, running_promenade

VIEWER = "{ viewer { user { id email name } memberships { role organization { slug } } } }"


def promenade(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PROMENADE, *args],
        env=promenade_env(data_dir),
        cwd=data_dir.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def viewer(url: str, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": VIEWER},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]["viewer"]
    return data


def printed_token(result: subprocess.CompletedProcess[str]) -> str:
    """The token a command printed: the only thing on its stdout."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    token = lines[0]
    assert token.startswith("prm_") and " " not in token
    return token


def available_output(process: subprocess.Popen[str]) -> str:
    """What the process has written to its stdout so far (uvicorn's access log goes there too),
    read without waiting for more."""
    assert process.stdout is not None
    fd = process.stdout.fileno()
    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def test_bootstrap_prints_a_token_that_the_api_accepts(data_dir: Path) -> None:
    migrated = promenade(data_dir, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == ""

    bad_email = promenade(data_dir, "bootstrap", "--email", "not-an-email")
    assert bad_email.returncode == 2
    assert bad_email.stdout == ""
    assert len(bad_email.stderr.strip().splitlines()) == 1, bad_email.stderr
    assert "email" in bad_email.stderr

    bootstrap = ("bootstrap", "--email", "a@example.com", "--name", "A", "--org", "acme")
    first = printed_token(promenade(data_dir, *bootstrap))
    second = printed_token(promenade(data_dir, *bootstrap))
    assert second != first

    with running_promenade("api", data_dir) as api:
        me = viewer(api.url, first)
        assert me["user"]["email"] == "a@example.com"
        assert me["user"]["name"] == "A"
        assert me["memberships"] == [{"role": "ADMIN", "organization": {"slug": "acme"}}]
        # The second run made a new token for the same user, and left the organization as is.
        assert viewer(api.url, second) == me
        refused = httpx.post(
            f"{api.url}/graphql",
            json={"query": VIEWER},
            headers={"Authorization": f"Bearer {first}x"},
            timeout=10,
        )
        assert refused.status_code == 401


def test_up_on_an_empty_data_directory_prints_an_admin_token_once(data_dir: Path) -> None:
    with running_promenade("up", data_dir) as first_run:
        token = first_run.first_stdout_line()
        assert token.startswith("prm_")
        me = viewer(first_run.url, token)
        assert me["user"]["email"] == "admin@localhost"
        assert me["memberships"] == [{"role": "ADMIN", "organization": {"slug": "default"}}]

    with running_promenade("up", data_dir) as second_run:
        # A token would be printed before the server answers /healthz.
        assert "prm_" not in available_output(second_run.process)
        # The first token still works.
        assert viewer(second_run.url, token) == me


def test_api_refuses_an_unmigrated_database_with_one_line(data_dir: Path) -> None:
    result = promenade(data_dir, "api", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "promenade migrate" in lines[0]


@pytest.mark.parametrize(("event_loop", "uv"), [("uvloop", True), ("asyncio", False)])
def test_commands_run_on_the_configured_event_loop(event_loop: str, uv: bool) -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def command() -> None:
        seen.append(asyncio.get_running_loop())

    cli.run(command(), event_loop=event_loop)
    assert isinstance(seen[0], uvloop.Loop) is uv
