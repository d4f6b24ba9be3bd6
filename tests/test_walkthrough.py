"""The README's walk-through, run as written against a real ``promenade up``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker

from tests.processes import free_port, running_promenade
from tests.support.docker import (
    docker_host,
    greeter_image,
    remove_installation_containers,
)

WALKTHROUGH = Path(__file__).parents[1] / "examples" / "walkthrough.sh"
CONTAINER_WALKTHROUGH = WALKTHROUGH.with_name("walkthrough-containers.sh")
SECRETS = ("dev-secret-value", "staging-secret-value", "production-secret-value")
PROMENADE = str(Path(sys.executable).parent / "promenade")


def _answer(lines: list[str], prefix: str) -> dict[str, object]:
    answers = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
    assert answers, f"no line starts with {prefix!r}"
    answer: dict[str, object] = json.loads(answers[-1])
    return answer


def test_walkthrough_works_as_written(tmp_path: Path) -> None:
    gateway = {"PROMENADE_GATEWAY_PORT": str(free_port())}
    with running_promenade("up", tmp_path, gateway) as promenade:
        token = promenade.first_stdout_line()
        result = subprocess.run(
            ["bash", str(WALKTHROUGH)],
            env={
                "PATH": "/usr/bin:/bin",
                "TOKEN": token,
                "PROMENADE_URL": promenade.url,
                # The reviewer's token comes from `promenade bootstrap` on the same data dir.
                "PROMENADE_BIN": PROMENADE,
                "PROMENADE_DATA_DIR": str(tmp_path),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        log = promenade.log_path.read_text()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()

    environments = [
        json.loads(line) for line in lines if line.startswith('{"name"') and "dnsPrefix" in line
    ]
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

    # The same build runs in both environments, each with its own values.
    promotion = json.loads(next(line for line in lines if line.startswith('{"status"')))
    assert promotion["status"] == "SUCCEEDED"
    assert [e["status"] for e in promotion["events"]] == [
        "QUEUED",
        "APPLYING_CONFIGURATION",
        "RESTARTING",
        "SUCCEEDED",
    ]
    assert _answer(lines, "staging answers: ")["greeting"] == "Hello from Staging"
    assert _answer(lines, "development answers: ")["greeting"] == "Hello from Development"
    assert _answer(lines, "staging answers: ")["has_api_key"] is True

    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr + log

    # Production is protected: the request waited for the APPROVER's review, then ran.
    request = _answer(lines, "request: ")
    assert request["status"] == "PENDING_APPROVAL"
    assert request["requiredApprovals"] == 1
    approved = json.loads(next(line for line in lines if '"reviews"' in line))
    assert approved["status"] == "QUEUED"
    assert approved["reviews"] == [
        {"decision": "APPROVED", "reviewer": {"email": "rita@example.com"}}
    ]
    assert _answer(lines, "production answers: ")["greeting"] == "Hello from Production"

    # A scheduled promotion: SCHEDULED when asked, then started by itself.
    assert _answer(lines, "scheduled: ")["status"] == "SCHEDULED"
    started: Any = _answer(lines, "started by itself: ")
    assert started["status"] == "SUCCEEDED"
    events = [e["status"] for e in started["events"]]
    assert events == ["SCHEDULED", "QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "SUCCEEDED"]

    # A broken build went live in Staging, failed its verification, and was rolled back.
    verified: Any = _answer(lines, "verified: ")
    assert verified["status"] == "FAILED"
    assert "verification failed: answers: 3 of 3 attempts failed (answered 500" in str(
        verified["error"]
    )
    assert [e["status"] for e in verified["events"]][-2:] == [
        "VERIFYING",
        "FAILED",
    ]
    staging_now: Any = _answer(lines, "staging history: ")
    history = [edge["node"] for edge in staging_now["history"]["edges"]]
    assert [(r["revision"], r["cause"], r["build"]["version"]) for r in history] == [
        (4, "ROLLBACK", "1.1.0"),
        (3, "PROMOTION", "2.0.0"),
    ]
    assert "verification failed" in history[0]["reason"]
    # Verification was set after revision 2: one run, of revision 3; the rollback is not verified.
    assert staging_now["verifications"] == [{"revision": 3, "passed": False}]
    assert _answer(lines, "staging answers again: ")["greeting"] == "Hello from Staging"
    # A configuration group's value reaches Staging (which has none of its own for the key).
    group = _answer(lines, "group set: ")
    assert group["group"] == {"name": "tuning", "values": [{"key": "REPEAT", "value": "3"}]}
    assert isinstance(group["restarted"], list) and len(group["restarted"]) == 1
    grouped = _answer(lines, "staging answers with the group: ")
    assert (grouped["repeat"], grouped["greeting"]) == (3, "Hello from Staging")
    # A release of two integrations, the ledger (a dependency) first.
    released = _answer(lines, "released: ")
    assert released["status"] == "SUCCEEDED", released
    assert released["members"] == [
        {
            "integration": {"name": "Ledger"},
            "build": {"version": "1.0.0"},
            "promotion": {"status": "SUCCEEDED"},
        },
        {
            "integration": {"name": "Greeter"},
            "build": {"version": "1.1.0"},
            "promotion": {"status": "SUCCEEDED"},
        },
    ]
    assert _answer(lines, "ledger answers in staging: ")["greeting"] == "Ledger in Staging"


def test_the_container_walkthrough_works_as_written(
    tmp_path: Path, docker_engine: docker.DockerClient
) -> None:
    client = docker_engine
    try:
        image = greeter_image(client)
        env = {"PROMENADE_GATEWAY_PORT": str(free_port()), "DOCKER_HOST": docker_host()}
        with running_promenade("up", tmp_path, env) as promenade:
            token = promenade.first_stdout_line()
            result = subprocess.run(
                ["bash", str(CONTAINER_WALKTHROUGH)],
                env={
                    "PATH": "/usr/bin:/bin",
                    "TOKEN": token,
                    "PROMENADE_URL": promenade.url,
                    "IMAGE": image,
                },
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            log = promenade.log_path.read_text()
            running = client.containers.list(filters={"ancestor": image})
        # Stopping embedded mode stops its integrations: their containers are removed.
        left = client.containers.list(all=True, filters={"ancestor": image})
    finally:
        remove_installation_containers(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # What `promenade up` said about the isolation at hand.
    assert "CONTAINER: Docker Engine" in log
    assert "LOCAL_PROCESS: each deployment's instances run as a Unix user" in log

    promotion = json.loads(next(line for line in lines if line.startswith('{"status"')))
    assert promotion == {"status": "SUCCEEDED", "error": None}
    test = _answer(lines, "test answers: ")
    live = _answer(lines, "live answers: ")
    assert (test["greeting"], live["greeting"]) == ("Hello from a container", "Hello from Live")
    assert test["has_api_key"] is live["has_api_key"] is True
    assert live["secret_files"] == ["API_KEY"]
    logs = [line for line in lines if line.startswith("live log: ")]
    assert any("greeter: listening on 127.0.0.1:8080" in line for line in logs), lines
    # Two containers ran it (Test and Live), gone with `promenade up`.
    assert len(running) == 2
    assert left == []
    for secret in ("test-container-secret", "live-container-secret"):
        assert secret not in result.stdout + result.stderr + log
