"""The README's walk-through, run as written against a real ``promenade up``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.processes import running_promenade

WALKTHROUGH = Path(__file__).parents[1] / "examples" / "walkthrough.sh"


def test_walkthrough_works_as_written(tmp_path: Path) -> None:
    with running_promenade("up", tmp_path) as promenade:
        token = promenade.first_stdout_line()
        result = subprocess.run(
            ["bash", str(WALKTHROUGH)],
            env={"PATH": "/usr/bin:/bin", "TOKEN": token, "PROMENADE_URL": promenade.url},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    environments = [json.loads(line) for line in lines if line.startswith('{"name"')]
    assert [e["name"] for e in environments] == ["Development", "Staging", "Production"]
    deployments = [json.loads(line) for line in lines if line.startswith('{"environment"')]
    assert [d["environment"]["name"] for d in deployments] == [
        "Development",
        "Staging",
        "Production",
    ]
    development, staging, _ = deployments
    assert development["configuration"] == [
        {"key": "GREETING", "value": "Hello from Development", "secret": False},
        {"key": "API_KEY", "value": None, "secret": True},
    ]
    assert development["missingConfiguration"] == []
    assert staging["configuration"] == []
    assert staging["missingConfiguration"] == ["GREETING", "API_KEY"]
    assert "dev-secret-value" not in result.stdout + result.stderr
