"""The server processes' log lines: JSON lines when stderr is not a terminal, text on one,
either when PROMENADE_LOG_FORMAT says so; uvicorn's lines in the same format. (What a line of a
change's work names, and what it masks: tests/workers/test_steps.py.)"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import select
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import httpx
import pytest

from app.log_lines import LogFormat
from tests.processes import (
    PROMENADE,
    STARTUP_TIMEOUT_S,
    free_port,
    promenade_env,
    running_promenade,
    start_gateway,
)
from tests.support.process_logs import logging_to, process_logging

GATEWAY_READY = "Gateway at "
# uvicorn colors its text lines on a terminal.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
UVICORN_READY = "Uvicorn running on "


def parsed(line: str) -> dict[str, Any] | None:
    """The line's JSON object, or None if it is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


@contextmanager
def terminal() -> Iterator[tuple[int, TextIO]]:
    """A pseudo-terminal: the side to read, and the side a process writes to as a file."""
    primary, secondary = pty.openpty()
    with os.fdopen(secondary, "w", buffering=1) as tty:
        try:
            yield primary, tty
        finally:
            os.close(primary)


def read_available(primary: int) -> str:
    chunks = []
    while select.select([primary], [], [], 0)[0]:
        chunks.append(os.read(primary, 65536))
    return b"".join(chunks).decode()


# ---- the choice, in the process's own logging -----------------------------------------------


@pytest.mark.parametrize(
    ("setting", "on_terminal", "json_lines"),
    [
        ("auto", True, False),
        ("auto", False, True),
        ("json", True, True),
        ("text", False, False),
    ],
)
def test_auto_is_text_on_a_terminal_and_json_otherwise_and_the_setting_forces_either(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    setting: LogFormat,
    on_terminal: bool,
    json_lines: bool,
) -> None:
    with terminal() as (primary, tty), (tmp_path / "stderr").open("w+") as file:
        stream = tty if on_terminal else file
        with logging_to(caplog, stream, setting):
            logging.getLogger("tests.choice").warning("the disk is %s", "full")
        stream.flush()
        if on_terminal:
            [line] = read_available(primary).splitlines()
        else:
            file.seek(0)
            [line] = file.read().splitlines()
    line = line.rstrip("\r")
    if json_lines:
        assert parsed(line) is not None, line
        fields = json.loads(line)
        assert {k: fields[k] for k in ("level", "logger", "message")} == {
            "level": "WARNING",
            "logger": "tests.choice",
            "message": "the disk is full",
        }
        assert datetime.fromisoformat(fields["time"]).utcoffset() == timedelta(0)
    else:
        assert parsed(line) is None, line
        assert line.endswith(" WARNING tests.choice: the disk is full"), line


def test_a_json_line_carries_the_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    with process_logging(caplog, "json") as stream:
        try:
            raise ValueError("no such thing")
        except ValueError:
            logging.getLogger("tests.choice").exception("it failed")
    [line] = stream.getvalue().splitlines()
    fields = json.loads(line)
    assert (fields["level"], fields["message"]) == ("ERROR", "it failed")
    assert fields["exception"].startswith("Traceback (most recent call last):")
    assert fields["exception"].endswith("ValueError: no such thing")


# ---- real processes: their logging and uvicorn's -------------------------------------------


def gateway_on_a_terminal(data_dir: Path, env: dict[str, str]) -> str:
    """``promenade gateway`` with a pseudo-terminal as its stdout and stderr: what it wrote
    until it said it serves."""
    port = free_port()
    with terminal() as (primary, tty):
        process = subprocess.Popen(
            [PROMENADE, "gateway"],
            env=promenade_env(data_dir, {**env, "PROMENADE_GATEWAY_PORT": str(port)}),
            cwd=data_dir,
            stdin=subprocess.DEVNULL,
            stdout=tty,
            stderr=tty,
        )
        output = ""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            while GATEWAY_READY not in output:
                assert process.poll() is None, f"promenade gateway exited:\n{output}"
                assert time.monotonic() < deadline, f"promenade gateway did not start:\n{output}"
                if select.select([primary], [], [], 0.1)[0]:
                    output += os.read(primary, 65536).decode(errors="replace")
        finally:
            process.terminate()
            process.wait(timeout=15)
    return ANSI.sub("", output.replace("\r\n", "\n"))


def gateway_to_a_file(data_dir: Path, env: dict[str, str]) -> str:
    """``promenade gateway`` with a file as its stdout and stderr: what it wrote until it
    answered its health check."""
    gateway = start_gateway(data_dir, env, free_port())
    gateway.stop()
    return gateway.log()


@pytest.mark.parametrize(
    ("setting", "on_terminal", "json_lines"),
    [
        (None, True, False),
        ("json", True, True),
        ("text", False, False),
    ],
)
def test_a_server_process_and_its_uvicorn_follow_the_setting(
    tmp_path: Path, setting: str | None, on_terminal: bool, json_lines: bool
) -> None:
    env = {"PROMENADE_LOG_FORMAT": setting} if setting else {}
    run = gateway_on_a_terminal if on_terminal else gateway_to_a_file
    output = run(tmp_path, env)
    [ready] = [line for line in output.splitlines() if UVICORN_READY in line]
    if json_lines:
        fields = parsed(ready)
        assert fields is not None, output
        assert (fields["level"], fields["logger"]) == ("INFO", "uvicorn.error"), fields
        assert fields["message"].startswith(UVICORN_READY)
    else:
        assert parsed(ready) is None, output
        assert ready.startswith("INFO:"), output


def test_a_server_process_off_a_terminal_writes_json_lines_uvicorns_access_lines_too(
    tmp_path: Path,
) -> None:
    """``promenade up``, its stderr a file and PROMENADE_LOG_FORMAT unset. A GET's query
    string (a GraphQL document and its variables: a secret value, say) stays out of the log."""
    secret = "hunter2-in-a-query-string"
    with running_promenade("up", tmp_path, {"PROMENADE_GATEWAY_PORT": str(free_port())}) as up:
        assert httpx.get(f"{up.url}/healthz?probe=1", timeout=5).status_code == 200
        query = {"query": "{ __typename }", "variables": f'{{"value": "{secret}"}}'}
        assert httpx.get(f"{up.url}/graphql", params=query, timeout=5).status_code == 401
        log = up.log_path.read_text()
    assert secret not in log
    lines = [fields for line in log.splitlines() if (fields := parsed(line)) is not None]
    accesses = [f for f in lines if f["logger"] == "uvicorn.access"]
    assert {(f["method"], f["path"], f["status"]) for f in accesses} >= {
        ("GET", "/healthz?…", 200),
        ("GET", "/graphql?…", 401),
    }
    [access] = [f for f in accesses if f["path"] == "/healthz?…"]
    assert access["level"] == "INFO"
    assert access["message"].endswith('"GET /healthz?… HTTP/1.1" 200')
    assert any(f["logger"] == "uvicorn.error" and UVICORN_READY in f["message"] for f in lines)
    [ready] = [f for f in lines if "serves data plane" in f["message"]]
    assert ready["logger"] == "workers.service"
    for fields in lines:
        assert set(fields) >= {"time", "level", "logger", "message"}, fields
