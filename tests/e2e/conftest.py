"""End-to-end fixtures: real ``promenade api``, ``promenade gateway`` and ``promenade worker``
processes on PostgreSQL and RabbitMQ, driven over HTTP with the sample integration
(examples/greeter) as what they deploy.

RabbitMQ comes from PROMENADE_TEST_AMQP_URL (required: there is no default); the tests get a
virtual host of their own on it (``rabbitmqctl add_vhost``), so that the queue
``promenade.execute.local``, which every organization's ``local`` data plane uses, is theirs
alone. PostgreSQL comes from PROMENADE_TEST_DATABASE_URL as for the other tests, in a database of
the tests' own.

The API and the gateway start once and serve every module (``cluster``: starting a process costs
seconds); each test works in an organization of its own, workers belong to the module or the
test that starts them, and at the end of each module every worker is stopped and every
integration process killed (and checked to be gone). test_broker_outage.py runs its own
installation on a RabbitMQ node of its own.

Helpers for the tests (GraphQL documents, waiting, the greeter's answers) live here too.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import aio_pika
import httpx
import pytest
from cryptography.fernet import Fernet

from app.db import create_engine, create_session_factory, session_scope
from app.services.bootstrap import bootstrap
from tests.conftest import _create_database, _drop_database, _postgres_url
from tests.processes import (
    INSTANCE_PYTHON,
    WORKER_READY,
    PromenadeProcess,
    free_port,
    instance_processes,
    kill_instances,
    running_promenade,
    start_gateway,
    start_worker,
    wait_for_gateway,
)
from tests.support.docker import docker_host, remove_installation_containers
from tests.support.waiting import eventually

GREETER = Path(__file__).resolve().parents[2] / "examples" / "greeter" / "app.py"
ADMIN_EMAIL = "admin@e2e.test"

AMQP_HELP = (
    "The end-to-end tests need RabbitMQ and its rabbitmqctl on this machine (each test module "
    "gets a virtual host of its own). Start the broker (on the project's machines: "
    "rabbitmq-server -detached) and set PROMENADE_TEST_AMQP_URL, e.g. "
    "PROMENADE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/"
)

T = TypeVar("T")


# ---- RabbitMQ --------------------------------------------------------------------------------


async def _probe(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    await connection.close()


def probe_amqp(url: str) -> None:
    """Connect once; raises when the broker does not answer."""
    # In a thread of its own: a fixture may be set up from within a running event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _probe(url)).result()


@pytest.fixture(scope="session")
def amqp_server_url() -> str:
    url = os.environ.get("PROMENADE_TEST_AMQP_URL")
    if not url:
        pytest.fail(f"PROMENADE_TEST_AMQP_URL is not set. {AMQP_HELP}", pytrace=False)
    try:
        probe_amqp(url)
    except Exception as exc:
        pytest.fail(f"cannot connect to {url} ({exc!r}). {AMQP_HELP}", pytrace=False)
    return url


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl`` against the machine's broker; fail the test with what to do when
    it cannot."""
    command = shutil.which("rabbitmqctl")
    if command is None:
        pytest.fail(f"rabbitmqctl is not on PATH. {AMQP_HELP}", pytrace=False)
    result = subprocess.run(
        [command, "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} failed: {result.stderr or result.stdout}. {AMQP_HELP}",
            pytrace=False,
        )
    return result.stdout


def url_with_vhost(url: str, vhost: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))


@pytest.fixture(scope="session")
def amqp_url(amqp_server_url: str) -> Iterator[str]:
    """A virtual host of the end-to-end tests' own on the machine's broker, deleted
    afterwards."""
    vhost = f"promenade-e2e-{secrets.token_hex(4)}"
    user = urlsplit(amqp_server_url).username or "guest"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield url_with_vhost(amqp_server_url, vhost)
    finally:
        rabbitmqctl("delete_vhost", vhost)


# ---- PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    yield from _postgres_url()


@contextmanager
def new_database(server_url: str) -> Iterator[str]:
    """A database of its own, migrated to head, dropped afterwards."""
    url = asyncio.run(_create_database(server_url))
    try:
        yield url
    finally:
        asyncio.run(_drop_database(server_url, url))


@pytest.fixture(scope="session")
def scaled_database_url(postgres_server_url: str) -> Iterator[str]:
    with new_database(postgres_server_url) as url:
        yield url


# ---- the processes ---------------------------------------------------------------------------


@dataclass
class Cluster:
    """A scaled installation: the API and the gateway run; workers are started by the tests."""

    data_dir: Path
    # PROMENADE_* settings every process of the installation shares.
    env: dict[str, str]
    api_url: str
    gateway_url: str
    token: str
    workers: list[PromenadeProcess] = field(default_factory=list)

    @property
    def runtime_dir(self) -> Path:
        return self.data_dir / "runtime"

    def start_worker(
        self,
        *,
        data_plane: str | list[str] = "local",
        concurrency: int = 4,
        pause_after_step: str | None = None,
    ) -> PromenadeProcess:
        """A worker of the data plane(s), each named as ``--data-plane`` takes it."""
        worker = start_worker(
            self.data_dir,
            self.worker_env,
            data_plane=data_plane,
            concurrency=concurrency,
            pause_after_step=pause_after_step,
        )
        self.workers.append(worker)
        return worker

    @property
    def worker_env(self) -> dict[str, str]:
        """The installation's settings, and the tests' Docker Engine for CONTAINER planes."""
        return {**self.env, "DOCKER_HOST": docker_host()}

    def start_workers(
        self, data_planes: list[str], *, concurrency: int = 4
    ) -> list[PromenadeProcess]:
        """A worker for each data plane named (a name may repeat), started at once."""
        started = [
            start_worker(
                self.data_dir, self.worker_env, data_plane=name, concurrency=concurrency, wait=False
            )
            for name in data_planes
        ]
        self.workers.extend(started)
        for worker in started:
            worker.wait_for_log(WORKER_READY)
        return started

    def stop_workers(self) -> None:
        """SIGTERM to every worker still running, at once; SIGKILL to any that does not
        drain in time."""
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
        while self.workers:
            self.workers.pop().stop()


async def admin_token(database_url: str) -> str:
    """The admin's API token (what ``promenade bootstrap`` does, without a process start)."""
    engine = create_engine(database_url)
    try:
        async with session_scope(create_session_factory(engine)) as session:
            result = await bootstrap(session, email=ADMIN_EMAIL, name="Admin")
        return result.token
    finally:
        await engine.dispose()


@contextmanager
def running_cluster(data_dir: Path, database_url: str, amqp_url: str) -> Iterator[Cluster]:
    """API and gateway on the database and broker given; everything it started is stopped
    afterwards, the integrations' processes included (and checked to be gone)."""
    gateway_port = free_port()
    env = {
        "PROMENADE_DATABASE_URL": database_url,
        "PROMENADE_AMQP_URL": amqp_url,
        "PROMENADE_SECRET_KEY": Fernet.generate_key().decode(),
        "PROMENADE_GATEWAY_PORT": str(gateway_port),
    }
    token = asyncio.run(admin_token(database_url))
    # Both start at once: most of a start is importing Python modules.
    gateway = start_gateway(data_dir, env, gateway_port, wait=False)
    cluster: Cluster | None = None
    try:
        with running_promenade("api", data_dir, env) as api:
            wait_for_gateway(gateway, gateway_port)
            cluster = Cluster(
                data_dir=data_dir,
                env=env,
                api_url=api.url,
                gateway_url=f"http://127.0.0.1:{gateway_port}",
                token=token,
            )
            yield cluster
    finally:
        if cluster is not None:
            cluster.stop_workers()
        gateway.stop()
        kill_instances(data_dir / "runtime")
        remove_installation_containers(data_dir)
    left = instance_processes(data_dir / "runtime")
    assert not left, f"integration processes left running: {left}"


@pytest.fixture(scope="session")
def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory, scaled_database_url: str, amqp_url: str
) -> Iterator[Cluster]:
    data_dir = tmp_path_factory.mktemp("e2e")
    with running_cluster(data_dir, scaled_database_url, amqp_url) as running:
        yield running


@pytest.fixture(scope="module")
def cluster(shared_cluster: Cluster) -> Iterator[Cluster]:
    """The installation, for one module: afterwards, the module's workers are stopped and the
    integration processes they started are killed."""
    yield shared_cluster
    shared_cluster.stop_workers()
    kill_instances(shared_cluster.runtime_dir)
    remove_installation_containers(shared_cluster.data_dir)
    left = instance_processes(shared_cluster.runtime_dir)
    assert not left, f"integration processes left running: {left}"


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster, for a test that starts its own workers: they are stopped after it."""
    try:
        yield cluster
    finally:
        cluster.stop_workers()


# ---- the API ---------------------------------------------------------------------------------


class Api:
    """GraphQL over real HTTP with the bootstrapped admin's token."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def raw(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": dict(variables or {})}
        )
        body: dict[str, Any] = response.json()
        return body

    async def execute(
        self, query: str, variables: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The response's data; fails the test on GraphQL errors."""
        body = await self.raw(query, variables)
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data

    async def ok(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The result of a one-field mutation; fails the test when it is an error type."""
        data = await self.execute(query, variables)
        (result,) = data.values()
        assert isinstance(result, dict), data
        assert "code" not in result, result
        return result


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(
        base_url=cluster.api_url,
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=60,
        trust_env=False,
    ) as http:
        yield Api(http)


async def answer(url: str) -> httpx.Response:
    """GET through the gateway (or anywhere), without the machine's proxy settings."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(url)


async def greeting(url: str) -> dict[str, Any]:
    """What the greeter at ``url`` answers; fails unless it answers 200."""
    response = await answer(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    body: dict[str, Any] = response.json()
    return body


# ---- GraphQL documents -----------------------------------------------------------------------

ERRORS = """
    __typename
    ... on Error { code message }
    ... on MissingConfigurationError { missingKeys environment { name } }
    ... on PromotionBlockedError { blockers }
"""
DEPLOYMENT_FIELDS = """
    id status revision endpointUrl lastError restartRequired
    environment { name }
    build { id version }
    configuration { key value secret }
    missingConfiguration
    history(first: 100) {
        totalCount
        edges { node { revision cause configurationDigest build { id version } promotion { id } } }
    }
"""
DEPLOYMENT = f"""
query($integration: ID!, $environment: ID!) {{
    integration(id: $integration) {{
        deployment(environmentId: $environment) {{ {DEPLOYMENT_FIELDS} }}
    }}
}}
"""
PROMOTION_FIELDS = """
    id status error finishedAt
    build { id version }
    sourceEnvironment { name }
    targetEnvironment { name }
    overrides { key value secret }
    events { status detail at }
"""
PROMOTION = f"query($id: ID!) {{ promotion(id: $id) {{ {PROMOTION_FIELDS} }} }}"
PROMOTIONS = """
query($integration: ID!) {
    integration(id: $integration) {
        promotions(first: 100) { totalCount edges { node { id status } } }
    }
}
"""
PROMOTE = f"""
mutation($input: PromoteInput!) {{
    promote(input: $input) {{ {ERRORS} ... on Promotion {{ {PROMOTION_FIELDS} }} }}
}}
"""
PROMOTION_PLAN = """
query($input: PromoteInput!) {
    promotionPlan(input: $input) {
        build { id version }
        sourceEnvironment { name }
        targetEnvironment { name }
        missingConfiguration
        configurationChanges { key secret before after kind }
        requiresApproval
        blockers
    }
}
"""
_DEPLOYMENT_RESULT = f"{ERRORS} ... on Deployment {{ {DEPLOYMENT_FIELDS} }}"
DEPLOY = f"mutation($input: DeployInput!) {{ deploy(input: $input) {{ {_DEPLOYMENT_RESULT} }} }}"
SET_CONFIGURATION = f"""
mutation($input: SetConfigurationInput!) {{
    setConfiguration(input: $input) {{ {_DEPLOYMENT_RESULT} }}
}}
"""
RESTART = f"mutation($id: ID!) {{ restartDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
SUSPEND = f"mutation($id: ID!) {{ suspendDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
RESUME = f"mutation($id: ID!) {{ resumeDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
ROLLBACK = f"""
mutation($input: RollbackInput!) {{ rollback(input: $input) {{ {_DEPLOYMENT_RESULT} }} }}
"""

FINAL_PROMOTION_STATUSES = {"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED", "EXPIRED"}

# ---- the sample integration ------------------------------------------------------------------

GREETER_SCHEMA = [
    {"key": "GREETING", "type": "STRING", "required": True},
    {"key": "REPEAT", "type": "INT", "required": False},
    {"key": "API_KEY", "type": "STRING", "required": True, "secret": True},
    # Read by the greeter from its environment: "crash" or "unhealthy" make it fail.
    {"key": "GREETER_FAIL", "type": "STRING", "required": False},
]


def greeter_artifact(label: str | None = None) -> str:
    """The greeter's command line; a label shows up as its answer's ``environment`` (it is how
    a test tells two builds apart by what they answer)."""
    command = [INSTANCE_PYTHON, str(GREETER)]
    if label is not None:
        command = ["/usr/bin/env", f"ENVIRONMENT_NAME={label}", *command]
    return shlex.join(command)


def entries(values: Mapping[str, str | None]) -> list[dict[str, str | None]]:
    return [{"key": key, "value": value} for key, value in values.items()]


@dataclass
class Greeter:
    """The greeter, set up in an organization of the test's own."""

    api: Api
    gateway_url: str
    organization: str  # slug
    environments: dict[str, str]  # name -> id
    project: str  # slug
    integration_id: str
    integration: str  # slug
    builds: dict[str, str]  # version -> id
    # The data plane of Live, as ``promenade worker --data-plane`` names it (ORG/NAME).
    live_plane: str | None = None
    # The pipeline's first environment: Development, or Test on a CONTAINER data plane.
    first: str = "Development"

    def endpoint(self, dns_prefix: str) -> str:
        return (
            f"{self.gateway_url}/{self.organization}/{dns_prefix}/{self.project}/"
            f"{self.integration}/"
        )

    async def create_build(self, version: str, artifact: str | None = None) -> str:
        build = await self.api.ok(
            """mutation($input: CreateBuildInput!) {
                createBuild(input: $input) { __typename ... on Error { code message }
                                             ... on Build { id } } }""",
            {
                "input": {
                    "integrationId": self.integration_id,
                    "version": version,
                    "artifact": artifact or greeter_artifact(),
                }
            },
        )
        self.builds[version] = build["id"]
        return str(build["id"])

    async def deployment(self, environment: str) -> dict[str, Any]:
        data = await self.api.execute(
            DEPLOYMENT,
            {"integration": self.integration_id, "environment": self.environments[environment]},
        )
        deployment: dict[str, Any] = data["integration"]["deployment"]
        return deployment

    async def wait_deployment(
        self,
        environment: str,
        check: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        within: float = 30,
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            deployment = await self.deployment(environment)
            return deployment if check(deployment) else None

        return await eventually(probe, within=within, what=f"{environment}: {what}")

    async def wait_revision(
        self, environment: str, revision: int, *, within: float = 30
    ) -> dict[str, Any]:
        """The deployment once it is ACTIVE at ``revision``; fails at once if a change failed."""

        def check(deployment: dict[str, Any]) -> bool:
            assert deployment["lastError"] is None, deployment["lastError"]
            return bool(deployment["status"] == "ACTIVE" and deployment["revision"] == revision)

        return await self.wait_deployment(
            environment, check, what=f"ACTIVE at revision {revision}", within=within
        )

    async def deploy(
        self,
        values: Mapping[str, str | None] | None = None,
        *,
        version: str = "1.0.0",
        environment: str | None = None,
    ) -> dict[str, Any]:
        """Deploy (into the pipeline's first environment, unless told) and wait until the new
        revision is ACTIVE."""
        environment = environment or self.first
        before = await self.deployment(environment)
        await self.api.ok(
            DEPLOY,
            {
                "input": {
                    "integrationId": self.integration_id,
                    "buildId": self.builds[version],
                    "environmentId": self.environments[environment],
                    "configuration": entries(values or {}),
                }
            },
        )
        return await self.wait_revision(environment, before["revision"] + 1)

    def promote_input(
        self,
        source: str,
        target: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "integrationId": self.integration_id,
            "sourceEnvironmentId": self.environments[source],
            "overrides": entries(overrides or {}),
            **extra,
        }
        if target is not None:
            payload["targetEnvironmentId"] = self.environments[target]
        return {"input": payload}

    async def promote(
        self,
        source: str,
        target: str | None = None,
        overrides: Mapping[str, str | None] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """The promote mutation's result, whatever its type."""
        data = await self.api.execute(
            PROMOTE, self.promote_input(source, target, overrides, **extra)
        )
        result: dict[str, Any] = data["promote"]
        return result

    async def promotion(self, promotion_id: str) -> dict[str, Any]:
        data = await self.api.execute(PROMOTION, {"id": promotion_id})
        promotion: dict[str, Any] = data["promotion"]
        return promotion

    async def wait_promotion(self, promotion_id: str, *, within: float = 30) -> dict[str, Any]:
        """The promotion once it has ended."""

        async def probe() -> dict[str, Any] | None:
            promotion = await self.promotion(promotion_id)
            return promotion if promotion["status"] in FINAL_PROMOTION_STATUSES else None

        return await eventually(probe, within=within, what=f"promotion {promotion_id} to end")

    async def promotions(self) -> dict[str, Any]:
        data = await self.api.execute(PROMOTIONS, {"integration": self.integration_id})
        promotions: dict[str, Any] = data["integration"]["promotions"]
        return promotions


async def new_greeter(
    api: Api,
    gateway_url: str,
    *,
    staging: bool = False,
    live_on: str | None = None,
    schema: list[dict[str, Any]] | None = None,
    image: str | None = None,
    plane_settings: dict[str, Any] | None = None,
) -> Greeter:
    """An organization of its own, a project, the greeter integration and its build 1.0.0.

    The project's pipeline: Development -> Production; with ``staging``, Development -> Staging
    -> Production; with ``live_on``, Development -> Live, where Live (dnsPrefix "live") runs on
    a data plane of the organization's of that name, which only a worker started for it
    (``greeter.live_plane``) serves. With ``image`` (the greeter's image), that data plane is a
    CONTAINER one (named ``live_on``, default "containers", with ``plane_settings``), and the
    pipeline Test -> Live runs on it: build 1.0.0 is the image."""
    slug = f"org-{secrets.token_hex(4)}"
    await api.ok(
        """mutation($slug: String!) { createOrganization(slug: $slug, name: $slug) {
            __typename ... on Error { code message } ... on Organization { id } } }""",
        {"slug": slug},
    )
    organization = (
        await api.execute(
            "query($slug: String!) { organization(slug: $slug) { id environments { id name } } }",
            {"slug": slug},
        )
    )["organization"]
    org_id = organization["id"]
    environments = {e["name"]: e["id"] for e in organization["environments"]}
    project_input: dict[str, Any] = {"organizationId": org_id}
    stages = ["Development", "Production"]
    if image is not None:
        live_on = live_on or "containers"
        plane = await api.ok(
            """mutation($input: CreateDataPlaneInput!) { createDataPlane(input: $input) {
                __typename ... on Error { code message } ... on DataPlane { id } } }""",
            {
                "input": {
                    "organizationId": org_id,
                    "name": live_on,
                    "runtime": "CONTAINER",
                    "settings": plane_settings or {},
                }
            },
        )
        for position, (name, prefix) in enumerate((("Test", "test"), ("Live", "live")), 2):
            environments[name] = await _create_environment(
                api,
                {
                    "organizationId": org_id,
                    "name": name,
                    "dnsPrefix": prefix,
                    "position": position,
                    "dataPlaneId": plane["id"],
                },
            )
        stages = ["Test", "Live"]
    elif live_on is not None:
        plane = await api.ok(
            """mutation($input: CreateDataPlaneInput!) { createDataPlane(input: $input) {
                __typename ... on Error { code message } ... on DataPlane { id } } }""",
            {"input": {"organizationId": org_id, "name": live_on, "runtime": "LOCAL_PROCESS"}},
        )
        environments["Live"] = await _create_environment(
            api,
            {
                "organizationId": org_id,
                "name": "Live",
                "dnsPrefix": "live",
                "dataPlaneId": plane["id"],
            },
        )
        stages = ["Development", "Live"]
    if staging:
        environments["Staging"] = await _create_environment(
            api, {"organizationId": org_id, "name": "Staging", "dnsPrefix": "stg", "position": 1}
        )
        stages = ["Development", "Staging", "Production"]
    if stages != ["Development", "Production"]:
        pipeline = await api.ok(
            """mutation($input: CreatePipelineInput!) { createPipeline(input: $input) {
                __typename ... on Error { code message } ... on DeploymentPipeline { id } } }""",
            {
                "input": {
                    "organizationId": org_id,
                    "name": "Release",
                    "environmentIds": [environments[name] for name in stages],
                }
            },
        )
        project_input["pipelineId"] = pipeline["id"]
    # The same names in every test's organization: their endpoints, on the one gateway that
    # every organization's "local" data plane shares, are told apart by the organization.
    project_input["name"] = "Billing"
    project = await api.ok(
        """mutation($input: CreateProjectInput!) { createProject(input: $input) {
            __typename ... on Error { code message } ... on Project { id slug } } }""",
        {"input": project_input},
    )
    integration = await api.ok(
        """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) {
            __typename ... on Error { code message } ... on Integration { id slug } } }""",
        {
            "input": {
                "projectId": project["id"],
                "name": "Greeter",
                "configSchema": schema or GREETER_SCHEMA,
            }
        },
    )
    greeter = Greeter(
        api=api,
        gateway_url=gateway_url,
        organization=slug,
        environments=environments,
        project=project["slug"],
        integration_id=integration["id"],
        integration=integration["slug"],
        builds={},
        live_plane=f"{slug}/{live_on}" if live_on is not None else None,
        first=stages[0],
    )
    await greeter.create_build("1.0.0", image)
    return greeter


async def _create_environment(api: Api, environment: dict[str, Any]) -> str:
    created = await api.ok(
        """mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) {
            __typename ... on Error { code message } ... on Environment { id } } }""",
        {"input": environment},
    )
    return str(created["id"])


def revisions(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The deployment's history, oldest first."""
    return [edge["node"] for edge in reversed(deployment["history"]["edges"])]
