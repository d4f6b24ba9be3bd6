"""The JavaScript clients and tools of tests/live/js, on the machine's Node.js, with the versions
pinned in tests/live/js/package-lock.json."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

JS = Path(__file__).parents[1] / "live" / "js"
NODE_HELP = (
    "These tests run JavaScript clients (graphql-ws, graphql-http) on Node.js (20 or later) and "
    "install them with npm: install Node.js and npm (on Debian: apt-get install nodejs npm)"
)


def node_with_packages() -> str:
    """The ``node`` command, once ``npm ci`` installed tests/live/js's packages (again only
    when package-lock.json is newer than the installed tree); fails the test without Node.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(NODE_HELP, pytrace=False)
    installed = JS / "node_modules" / ".package-lock.json"
    lock = JS / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"npm ci in {JS} failed: {result.stderr}", pytrace=False)
    return node


async def run_script(
    command: list[str], env: Mapping[str, str], *, timeout_s: float = 60
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of a Node.js script, with ``env`` and the machine's PATH as
    its whole environment (no proxy settings: it talks to servers on this machine)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
