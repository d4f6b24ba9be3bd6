"""The client commands of ``promenade`` (env list, status, promote, deploy, rollback, logs,
compare), run as real processes against a real ``promenade up``, with the greeter sample as
the integration.

The installation is set up once for the module through the API: a Staging environment, a
pipeline Development -> Staging -> Production, the project Billing and its integration Greeter
(GREETING required, REPEAT optional, API_KEY secret), builds 1.0.0 and 1.1.0. Everything after
that goes through the CLI.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.client.api import PromenadeAPI
from app.client.errors import RequestFailed, Unauthenticated
from app.client.transport import GraphQLClient
from tests.processes import INSTANCE_PYTHON, free_port, promenade_env, running_promenade

REPO = Path(__file__).resolve().parents[2]
PROMENADE = str(Path(sys.executable).parent / "promenade")
ARTIFACT = shlex.join([INSTANCE_PYTHON, str(REPO / "examples" / "greeter" / "app.py")])
INTEGRATION = "billing/greeter"
DEV_SECRET = "dev-api-key-4f1c9e"
STAGING_SECRET = "staging-api-key-8b2d7a"
JSON_SECRET = "json-run-api-key-3e6f0b"
PROMOTION_STATUSES = ["QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "SUCCEEDED"]


@dataclass
class Installation:
    url: str
    token: str
    data_dir: Path
    log_path: Path
    integration_id: str

    def env(self, **extra: str) -> dict[str, str]:
        return promenade_env(
            self.data_dir,
            {"PROMENADE_URL": self.url, "PROMENADE_TOKEN": self.token, **extra},
        )

    def cli(self, *args: str, stdin: str = "", **extra: str) -> subprocess.CompletedProcess[str]:
        """``promenade <args>`` with PROMENADE_URL and PROMENADE_TOKEN, its output in a pipe,
        ``stdin`` as its standard input."""
        return subprocess.run(
            [PROMENADE, *args],
            env=self.env(**extra),
            cwd=self.data_dir,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql",
            json={"query": query, "variables": dict(variables or {})},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        data: dict[str, Any] = body["data"]
        return data

    def mutate(self, query: str, variables: Mapping[str, Any], typename: str) -> dict[str, Any]:
        (result,) = self.graphql(query, variables).values()
        assert result["__typename"] == typename, result
        return dict(result)

    def deployments(self) -> dict[str, dict[str, Any]]:
        """The integration's deployments by environment name, read through the API."""
        data = self.graphql(
            """query($id: ID!) { integration(id: $id) { deployments {
              environment { name } status revision endpointUrl build { version } } } }""",
            {"id": self.integration_id},
        )
        return {d["environment"]["name"]: d for d in data["integration"]["deployments"]}

    def cli_parallel(
        self, runs: Mapping[str, Sequence[str]]
    ) -> dict[str, subprocess.CompletedProcess[str]]:
        """Independent commands at once (each one spends most of its time starting)."""
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(self.cli, *args) for name, args in runs.items()}
            return {name: future.result() for name, future in futures.items()}


def set_up(installation: Installation) -> str:
    """Staging, a pipeline through the three environments, Billing/Greeter and two builds; the
    integration's id."""
    viewer = installation.graphql(
        "{ viewer { memberships { organization { id environments { id name } } } } }"
    )
    (membership,) = viewer["viewer"]["memberships"]
    organization = membership["organization"]["id"]
    staging = installation.mutate(
        """mutation($org: ID!) { createEnvironment(input: {organizationId: $org, name: "Staging",
        dnsPrefix: "stg", position: 1}) { __typename ... on Environment { id } } }""",
        {"org": organization},
        "Environment",
    )
    environments = {e["name"]: e["id"] for e in membership["organization"]["environments"]}
    pipeline = installation.mutate(
        """mutation($org: ID!, $envs: [ID!]!) { createPipeline(input: {organizationId: $org,
        name: "Release", environmentIds: $envs}) {
          __typename ... on DeploymentPipeline { id } } }""",
        {
            "org": organization,
            "envs": [environments["Development"], staging["id"], environments["Production"]],
        },
        "DeploymentPipeline",
    )
    project = installation.mutate(
        """mutation($org: ID!, $pipeline: ID!) { createProject(input: {organizationId: $org,
        name: "Billing", pipelineId: $pipeline}) { __typename ... on Project { id } } }""",
        {"org": organization, "pipeline": pipeline["id"]},
        "Project",
    )
    integration = installation.mutate(
        """mutation($project: ID!) { createIntegration(input: {projectId: $project,
        name: "Greeter", configSchema: [{key: "GREETING"},
          {key: "REPEAT", type: INT, required: false, defaultValue: "1"},
          {key: "API_KEY", secret: true}]}) { __typename ... on Integration { id } } }""",
        {"project": project["id"]},
        "Integration",
    )
    # The greeter again, with GREETER_FAIL as configuration: a value of "crash" fails it.
    crasher = installation.mutate(
        """mutation($project: ID!) { createIntegration(input: {projectId: $project,
        name: "Crasher", configSchema: [{key: "GREETER_FAIL", required: false}]}) {
          __typename ... on Integration { id } } }""",
        {"project": project["id"]},
        "Integration",
    )
    builds = [(integration["id"], "1.0.0"), (integration["id"], "1.1.0"), (crasher["id"], "1.0.0")]
    for integration_id, version in builds:
        installation.mutate(
            """mutation($integration: ID!, $version: String!, $artifact: String!) {
            createBuild(input: {integrationId: $integration, version: $version,
              artifact: $artifact}) { __typename } }""",
            {"integration": integration_id, "version": version, "artifact": ARTIFACT},
            "Build",
        )
    return str(integration["id"])


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    data_dir = tmp_path_factory.mktemp("promenade")
    with running_promenade("up", data_dir, {"PROMENADE_GATEWAY_PORT": str(free_port())}) as up:
        installed = Installation(
            url=up.url,
            token=up.first_stdout_line(),
            data_dir=data_dir,
            log_path=up.log_path,
            integration_id="",
        )
        installed.integration_id = set_up(installed)
        yield installed


@pytest.fixture(scope="module")
def deployed(installation: Installation) -> subprocess.CompletedProcess[str]:
    """``promenade deploy --wait`` of 1.0.0 into Development, with its values."""
    return installation.cli(
        "deploy",
        INTEGRATION,
        "--build",
        "1.0.0",
        "--set",
        "GREETING=Hello from Development",
        "--secret",
        "API_KEY",
        "--wait",
        stdin=f"{DEV_SECRET}\n",
    )


@pytest.fixture(scope="module")
def promoted(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> subprocess.CompletedProcess[str]:
    """``promenade promote --wait`` from Development to Staging with Staging's own values."""
    assert deployed.returncode == 0, deployed.stderr
    return installation.cli(
        "promote",
        INTEGRATION,
        "--from",
        "development",
        "--set",
        "GREETING=Hello from Staging",
        "--secret-env",
        "API_KEY=STAGING_API_KEY",
        "--message",
        "first release to Staging",
        "--wait",
        STAGING_API_KEY=STAGING_SECRET,
    )


def greet(endpoint: str) -> dict[str, Any]:
    response = httpx.get(endpoint, timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr (and nothing on stdout), after any
    warnings."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [
        line
        for line in result.stderr.strip().splitlines()
        if not line.startswith("promenade: warning:")
    ]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(installation: Installation, *args: str) -> tuple[int, str, str]:
    """``promenade <args>`` with a pseudo-terminal as its stdout and stderr: the exit code, the
    output as written, and the output without its escape sequences."""
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        [PROMENADE, *args],
        env=installation.env(TERM="xterm-256color", COLUMNS="160"),
        cwd=installation.data_dir,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not select.select([primary], [], [], 0.5)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the other side of the terminal is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = process.wait(timeout=10)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
    output = b"".join(chunks).decode(errors="replace")
    return code, output, ANSI.sub("", output)


# ---- env list ----------------------------------------------------------------------------------


def test_env_list_shows_the_environments_in_order(installation: Installation) -> None:
    results = installation.cli_parallel(
        {"text": ("env", "list"), "json": ("env", "list", "--json")}
    )
    text = results["text"]
    assert text.returncode == 0, text.stderr
    header, *rows = text.stdout.splitlines()
    assert header.split() == ["#", "NAME", "DNS", "PREFIX", "CRITICAL", "DATA", "PLANE", "FROZEN"]
    assert [row.split() for row in rows] == [
        ["0", "Development", "dev", "no", "local", "(LOCAL_PROCESS)", "no"],
        ["1", "Staging", "stg", "no", "local", "(LOCAL_PROCESS)", "no"],
        ["2", "Production", "prod", "yes", "local", "(LOCAL_PROCESS)", "no"],
    ]
    assert "\x1b[" not in text.stdout  # no colors in a pipe

    assert results["json"].returncode == 0, results["json"].stderr
    listed = json.loads(results["json"].stdout)
    assert listed["organization"]["slug"] == "default"
    assert [
        (e["name"], e["dnsPrefix"], e["critical"], e["frozen"], e["dataPlane"]["runtime"])
        for e in listed["environments"]
    ] == [
        ("Development", "dev", False, False, "LOCAL_PROCESS"),
        ("Staging", "stg", False, False, "LOCAL_PROCESS"),
        ("Production", "prod", True, False, "LOCAL_PROCESS"),
    ]


# ---- deploy and status -------------------------------------------------------------------------


def test_deploy_wait_runs_the_build_in_the_first_environment(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> None:
    assert deployed.returncode == 0, deployed.stderr
    assert DEV_SECRET not in deployed.stdout + deployed.stderr
    lines = deployed.stdout.splitlines()
    assert lines[0] == "IN_PROGRESS  deploy of 1.0.0 to Development queued"
    assert lines[-1].startswith("Greeter 1.0.0 is ACTIVE in Development (revision 1): http")

    development = installation.deployments()["Development"]
    assert development["status"] == "ACTIVE"
    assert lines[-1].endswith(development["endpointUrl"])
    answer = greet(development["endpointUrl"])
    assert answer["greeting"] == "Hello from Development"
    assert answer["has_api_key"] is True


def test_status_shows_each_environment_of_the_pipeline(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> None:
    assert deployed.returncode == 0, deployed.stderr
    with ThreadPoolExecutor(1) as pool:
        terminal = pool.submit(run_in_terminal, installation, "status", INTEGRATION)
        results = installation.cli_parallel(
            {
                "text": ("status", INTEGRATION),
                "json": ("status", installation.integration_id, "--json"),
            }
        )
        code, raw, shown = terminal.result()

    text = results["text"]
    assert text.returncode == 0, text.stderr
    header, *rows = text.stdout.splitlines()
    assert header.split() == [
        "ENVIRONMENT",
        "STATUS",
        "BUILD",
        "REV",
        "ENDPOINT",
        "RESTART",
        "MISSING",
        "CONFIG",
        "LAST",
        "ERROR",
    ]
    by_name = {row.split()[0]: row.split() for row in rows}
    assert list(by_name) == ["Development", "Staging", "Production"]
    assert by_name["Development"][1:3] == ["ACTIVE", "1.0.0"]
    assert by_name["Development"][4].endswith("/dev/billing/greeter/")
    # Nothing ever reaches Production in this module: it lacks its required values.
    assert by_name["Production"][1:] == [
        "NOT_DEPLOYED",
        "-",
        "-",
        "-",
        "no",
        "GREETING,API_KEY",
        "-",
    ]

    # The same, asked by id, for scripts.
    assert results["json"].returncode == 0, results["json"].stderr
    status = json.loads(results["json"].stdout)
    assert status["integration"]["id"] == installation.integration_id
    assert status["integration"]["project"] == "billing"
    deployments = {d["environment"]["name"]: d for d in status["deployments"]}
    assert list(deployments) == ["Development", "Staging", "Production"]
    development = deployments["Development"]
    assert development["status"] == "ACTIVE"
    assert development["build"]["version"] == "1.0.0"
    assert development["revision"] >= 1
    assert development["restartRequired"] is False
    assert development["missingConfiguration"] == []
    assert development["lastError"] is None
    assert deployments["Production"]["status"] == "NOT_DEPLOYED"
    assert deployments["Production"]["missingConfiguration"] == ["GREETING", "API_KEY"]

    # On a terminal: a rich table, in color.
    assert code == 0, raw
    assert "┃" in shown and "ENVIRONMENT" in shown and "Development" in shown
    assert "\x1b[32mACTIVE" in raw  # green


# ---- promote -----------------------------------------------------------------------------------


def test_promote_wait_follows_the_promotion_and_never_prints_the_secret(
    installation: Installation, promoted: subprocess.CompletedProcess[str]
) -> None:
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    for output in (promoted.stdout, promoted.stderr, installation.log_path.read_text()):
        assert STAGING_SECRET not in output
    lines = promoted.stdout.splitlines()
    assert lines[0] == "Plan: Greeter 1.0.0 from Development to Staging"
    assert '  + GREETING = "Hello from Staging"' in lines
    assert "  + API_KEY = (secret)" in lines
    # One line per status, in order, then the outcome.
    statuses = [line.split()[0] for line in lines if line.split()[0] in PROMOTION_STATUSES]
    assert statuses == PROMOTION_STATUSES
    assert lines[-1] == "Promoted Greeter 1.0.0 from Development to Staging"

    staging = installation.deployments()["Staging"]
    assert staging["status"] == "ACTIVE"
    answer = greet(staging["endpointUrl"])
    assert answer["greeting"] == "Hello from Staging"
    assert answer["has_api_key"] is True


def test_promote_json_is_one_document_without_the_secret(
    installation: Installation, promoted: subprocess.CompletedProcess[str]
) -> None:
    assert promoted.returncode == 0, promoted.stderr
    result = installation.cli(
        "promote",
        INTEGRATION,
        "--from",
        "Development",
        "--to",
        "STAGING",
        "--secret",
        "API_KEY",
        "--json",
        "--wait",
        stdin=JSON_SECRET + "\n",
    )
    assert result.returncode == 0, result.stderr
    assert JSON_SECRET not in result.stdout + result.stderr
    document = json.loads(result.stdout)
    changes = {c["key"]: c for c in document["plan"]["configurationChanges"]}
    assert changes["API_KEY"] == {
        "key": "API_KEY",
        "secret": True,
        "before": None,
        "after": None,
        "kind": "CHANGED",
    }
    assert document["plan"]["blockers"] == []
    promotion = document["promotion"]
    assert promotion["status"] == "SUCCEEDED"
    assert promotion["error"] is None
    assert [e["status"] for e in promotion["events"]] == PROMOTION_STATUSES
    assert promotion["targetEnvironment"]["name"] == "Staging"


def test_promote_without_the_target_values_is_refused_with_the_missing_keys(
    installation: Installation, promoted: subprocess.CompletedProcess[str]
) -> None:
    assert promoted.returncode == 0, promoted.stderr
    # Staging runs 1.0.0 now; Production, next in the pipeline, has no values at all.
    result = installation.cli("promote", INTEGRATION, "--from", "Staging", "--wait")
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "Production lacks required configuration: GREETING, API_KEY" in line
    assert "  missing: GREETING, API_KEY" in result.stdout.splitlines()
    assert installation.deployments()["Production"]["status"] == "NOT_DEPLOYED"


def test_failed_changes_exit_1_with_the_reason(installation: Installation) -> None:
    crashed = installation.cli(
        "deploy", "billing/crasher", "--build", "1.0.0", "--set", "GREETER_FAIL=crash", "--wait"
    )
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert crashed.stderr.startswith(
        "promenade: the deploy of 1.0.0 to Development failed (Development is ERROR): "
        "exited with code 3"
    )
    assert "greeter: refusing to start (GREETER_FAIL=crash)" in crashed.stderr

    fixed = installation.cli(
        "deploy", "billing/crasher", "--build", "1.0.0", "--set", "GREETER_FAIL=", "--wait"
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr

    failed = installation.cli(
        "promote",
        "billing/crasher",
        "--from",
        "Development",
        "--set",
        "GREETER_FAIL=crash",
        "--wait",
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    # The plan, then one line per status.
    statuses = [line.split()[0] for line in failed.stdout.splitlines()[2:]]
    assert statuses == ["QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "FAILED"]
    assert failed.stdout.splitlines()[-1] == "FAILED  exited with code 3 (...)"
    failure = re.match(r"promenade: promotion (pro_\w+) FAILED: exited with code 3", failed.stderr)
    assert failure, failed.stderr

    # A retry asks for the same build with the same overrides: it fails the same way, as a new
    # promotion linked to the first.
    retried = installation.cli("retry", failure[1], "--wait")
    assert retried.returncode == 1, retried.stdout + retried.stderr
    [again] = re.findall(
        r"promenade: promotion (pro_\w+) FAILED: exited with code 3", retried.stderr
    )
    assert again != failure[1]
    link = installation.graphql(
        "query($id: ID!) { promotion(id: $id) { retryOf { id } } }", {"id": again}
    )
    assert link["promotion"]["retryOf"] == {"id": failure[1]}
    # The first one was retried already, but a failed promotion may be retried again; one that
    # does not exist is not found.
    unknown = installation.cli("retry", "pro_01jzzzzzzzzzzzzzzzzzzzzzzz")
    assert (unknown.returncode, unknown.stderr) == (
        1,
        "promenade: no promotion with id pro_01jzzzzzzzzzzzzzzzzzzzzzzz\n",
    )


# ---- rollback ----------------------------------------------------------------------------------


def test_rollback_wait_brings_back_the_previous_build(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> None:
    assert deployed.returncode == 0, deployed.stderr
    upgrade = installation.cli("deploy", INTEGRATION, "--build", "1.1.0", "--wait")
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    upgraded = installation.deployments()["Development"]
    assert upgraded["build"]["version"] == "1.1.0"

    # On a terminal, for once: the rich progress display.
    code, raw, shown = run_in_terminal(
        installation, "rollback", INTEGRATION, "--env", "development", "--wait"
    )
    assert code == 0, shown
    assert "rollback of Development to the previous revision queued" in shown
    assert "ROLLBACK succeeded" in shown
    assert f"Greeter 1.0.0 is ACTIVE in Development (revision {upgraded['revision'] + 1})" in shown
    assert "\x1b[32mACTIVE" in raw

    rolled_back = installation.deployments()["Development"]
    assert rolled_back["build"]["version"] == "1.0.0"
    assert rolled_back["revision"] == upgraded["revision"] + 1
    assert greet(rolled_back["endpointUrl"])["greeting"] == "Hello from Development"


# ---- logs --------------------------------------------------------------------------------------


def test_logs_show_the_integrations_output_from_any_machine(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> None:
    assert deployed.returncode == 0, deployed.stderr
    # Another machine: no data directory of the installation's, only the API's URL and a token.
    elsewhere = installation.data_dir / "another-machine"
    elsewhere.mkdir(exist_ok=True)
    with ThreadPoolExecutor(1) as pool:
        remote = pool.submit(
            installation.cli,
            *("logs", INTEGRATION, "--env", "Development", "--json"),
            PROMENADE_DATA_DIR=str(elsewhere),
        )
        result = installation.cli("logs", INTEGRATION, "--env", "Development", "--lines", "200")
        remote_result = remote.result()
    assert result.returncode == 0, result.stderr
    assert "greeter: listening on 127.0.0.1:" in result.stdout
    assert DEV_SECRET not in result.stdout
    assert remote_result.returncode == 0, remote_result.stderr
    shown = json.loads(remote_result.stdout)
    assert shown["environment"] == "Development"
    assert any("greeter: listening on 127.0.0.1:" in line for line in shown["lines"])
    assert DEV_SECRET not in remote_result.stdout


# ---- secrets off the command line ----------------------------------------------------------------


def test_a_secret_value_on_the_command_line_is_refused(installation: Installation) -> None:
    result = installation.cli(
        "promote", INTEGRATION, "--from", "development", "--secret", "API_KEY=in-argv-4c1e"
    )
    assert result.returncode == 2
    assert "never from the command line" in result.stderr
    assert "in-argv-4c1e" not in result.stdout + result.stderr
    missing = installation.cli(
        "promote", INTEGRATION, "--from", "development", "--secret-env", "API_KEY=NOT_SET_9"
    )
    assert missing.returncode == 2
    assert "the environment has no variable NOT_SET_9" in missing.stderr


def test_a_secret_key_given_with_set_is_refused_and_changes_nothing(
    installation: Installation, deployed: subprocess.CompletedProcess[str]
) -> None:
    assert deployed.returncode == 0, deployed.stderr
    before = installation.deployments()["Development"]
    result = installation.cli(
        "deploy", INTEGRATION, "--build", "1.1.0", "--set", "API_KEY=in-argv-77d2", "--wait"
    )
    assert result.returncode == 2, result.stderr
    assert "API_KEY: secret in the integration's schema, so not with --set" in result.stderr
    assert "--secret KEY" in result.stderr
    assert "in-argv-77d2" not in result.stdout + result.stderr
    assert installation.deployments()["Development"] == before


# ---- errors ------------------------------------------------------------------------------------


def test_errors_are_one_line_and_a_non_zero_exit(installation: Installation) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    results = installation.cli_parallel(
        {
            "bad token": ("status", INTEGRATION, "--token", installation.token + "x"),
            "no server": ("env", "list", "--url", unreachable),
            "unknown integration": ("status", "billing/nothing-here"),
            "unknown source": ("promote", INTEGRATION, "--from", "Narnia", "--wait"),
            "unknown build": ("deploy", INTEGRATION, "--build", "9.9.9", "--wait"),
        }
    )
    lines = {name: one_line(result) for name, result in results.items()}
    assert all(result.returncode == 1 for result in results.values()), lines
    assert "refused the token (HTTP 401)" in lines["bad token"]
    assert "--token puts the token on the command line" in results["bad token"].stderr
    assert f"cannot reach Promenade at {unreachable}/graphql" in lines["no server"]
    assert "no project 'billing'" not in lines["unknown integration"]
    assert "no integration 'nothing-here' in project 'billing'" in lines["unknown integration"]
    assert "no environment 'Narnia'" in lines["unknown source"]
    assert "(its environments: Development, Staging, Production)" in lines["unknown source"]
    assert "no build '9.9.9' of billing/greeter" in lines["unknown build"]


async def test_subscriptions_authenticate_in_connection_init(
    installation: Installation,
) -> None:
    """The client's graphql-transport-ws: a refused token ends in Unauthenticated (the server
    closes with 4403), an unknown promotion in the server's error message."""
    async with GraphQLClient(installation.url, installation.token + "x") as client:
        with pytest.raises(Unauthenticated, match="4403"):
            async for _ in PromenadeAPI(client).promotion_status("pro_unknown"):
                pass
    async with GraphQLClient(installation.url, installation.token) as client:
        with pytest.raises(RequestFailed, match="no promotion with id pro_unknown"):
            async for _ in PromenadeAPI(client).promotion_status("pro_unknown"):
                pass


def test_a_rollback_into_a_protected_environment_says_it_is_a_request(
    installation: Installation, promoted: subprocess.CompletedProcess[str]
) -> None:
    assert promoted.returncode == 0, promoted.stderr
    if installation.deployments()["Staging"]["revision"] < 2:
        # A revision to roll back to, whichever tests ran before (alone, only one was made).
        again = installation.cli("promote", INTEGRATION, "--from", "development", "--wait")
        assert again.returncode == 0, again.stdout + again.stderr
    staging = installation.deployments()["Staging"]
    environments = installation.graphql(
        "query($id: ID!) { integration(id: $id) { deployments { environment { id name } } } }",
        {"id": installation.integration_id},
    )
    staging_id = next(
        d["environment"]["id"]
        for d in environments["integration"]["deployments"]
        if d["environment"]["name"] == "Staging"
    )
    policy = """mutation($env: ID!, $n: Int!) { setApprovalPolicy(input: {environmentId: $env,
        requiredApprovals: $n}) { __typename } }"""
    installation.mutate(policy, {"env": staging_id, "n": 1}, "Environment")
    try:
        result = installation.cli(
            "rollback", INTEGRATION, "--env", "staging", "--revision", "1", "--wait"
        )
        assert result.returncode == 0, result.stderr
        assert "it is a request now, waiting for 1 approval(s)" in result.stdout
        # Nothing ran: Staging keeps its revision.
        assert installation.deployments()["Staging"]["revision"] == staging["revision"]
    finally:
        pending = installation.graphql(
            """{ viewer { memberships { organization { pendingApprovals {
                edges { node { id } } } } } } }"""
        )
        for membership in pending["viewer"]["memberships"]:
            for edge in membership["organization"]["pendingApprovals"]["edges"]:
                installation.graphql(
                    "mutation($id: ID!) { cancelPromotion(id: $id) { __typename } }",
                    {"id": edge["node"]["id"]},
                )
        installation.graphql(
            "mutation($env: ID!) { removeApprovalPolicy(environmentId: $env) { __typename } }",
            {"env": staging_id},
        )


# ---- compare -----------------------------------------------------------------------------------


def test_compare_shows_builds_and_keys_that_differ_and_no_secret(
    installation: Installation, promoted: subprocess.CompletedProcess[str]
) -> None:
    assert promoted.returncode == 0, promoted.stderr
    # Production runs nothing and has no values in any test of this module.
    against_production = ("compare", "billing", "--env", "staging", "--env", "Production")
    results = installation.cli_parallel(
        {
            "text": against_production,
            "json": (*against_production, "--json"),
            "secrets": ("compare", "billing", "--env", "development", "--env", "staging", "--json"),
            "one environment": ("compare", "billing", "--env", "staging"),
            "unknown project": (
                "compare",
                "nothing-here",
                "--env",
                "development",
                "--env",
                "staging",
            ),
        }
    )
    for result in results.values():
        for secret in (DEV_SECRET, STAGING_SECRET, JSON_SECRET):
            assert secret not in result.stdout + result.stderr

    # Greeter's rows (the Crasher's state depends on which tests ran before).
    text = results["text"]
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["INTEGRATION", "STAGING", "PRODUCTION", "DRIFT"]
    (greeter,) = [line.split() for line in lines[1:3] if line.startswith("Greeter ")]
    assert greeter[2] == "(ACTIVE)", lines
    assert greeter[3:] == ["NOT_DEPLOYED", "build,", "2", "keys"], lines
    assert lines[4].split() == ["INTEGRATION", "KEY", "DRIFT", "STAGING", "PRODUCTION"]
    assert [line.split() for line in lines[5:] if line.startswith("Greeter ")] == [
        ["Greeter", "GREETING", "only", "in", "A", "Hello", "from", "Staging", "-"],
        ["Greeter", "API_KEY", "only", "in", "A", "(secret)", "-"],
    ]

    assert results["json"].returncode == 0, results["json"].stderr
    document = json.loads(results["json"].stdout)
    assert (document["environmentA"]["name"], document["environmentB"]["name"]) == (
        "Staging",
        "Production",
    )
    crasher, greeter_drift = document["integrations"]
    assert crasher["integration"]["name"] == "Crasher"
    assert document["driftedIntegrations"] == 1 + crasher["differs"]
    assert greeter_drift["statusB"] == "NOT_DEPLOYED" and greeter_drift["buildB"] is None
    assert {
        c["key"]: (c["kind"], c["valueA"], c["valueB"]) for c in greeter_drift["configuration"]
    } == {
        "GREETING": ("ONLY_IN_A", "Hello from Staging", None),
        "REPEAT": ("SAME", "1", "1"),
        "API_KEY": ("ONLY_IN_A", None, None),
    }

    assert results["secrets"].returncode == 0, results["secrets"].stderr
    between = json.loads(results["secrets"].stdout)["integrations"][1]["configuration"]
    assert {c["key"]: c["kind"] for c in between} == {
        "GREETING": "DIFFERENT",
        "REPEAT": "SAME",
        "API_KEY": "SECRET_NOT_COMPARED",
    }

    assert results["one environment"].returncode == 2
    assert "give exactly two environments" in one_line(results["one environment"])
    assert results["unknown project"].returncode == 1
    assert "no project 'nothing-here' in organization" in one_line(results["unknown project"])
