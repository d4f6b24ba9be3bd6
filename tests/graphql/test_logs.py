"""Deployment.logs: read from the data plane's worker over the in-process bus (as in embedded
mode), for DEVELOPER and ADMIN only, with the secret values of the instances' configuration
masked; another organization's deployment is not found. (Over RabbitMQ: tests/e2e.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.main import create_app
from app.messaging.inprocess import InProcessBus
from app.models import ChangeKind, ChangeStatus, Deployment, DeploymentChange
from app.services.dataplanes import LOCAL_ROUTING_KEY
from app.services.masking import with_output
from app.settings import Settings
from tests.graphql.governance import SECRET_KEY, World, governed_world
from tests.support.graphql_client import GraphQLClient
from tests.support.runtimes import FakeRuntime
from workers.logs import LogReader

SECRET = "hunter2-the-secret-value"
OUTPUT = [
    "starting",
    f"connecting with {SECRET}",
    f"the key again, split: {SECRET[:10]}",
    f"{SECRET[10:]} (end)",
    "ready",
]
LOGS = "query($id: ID!, $lines: Int) { deployment(id: $id) { id logs(lines: $lines) } }"


class LoggingRuntime(FakeRuntime):
    """Starts nothing; its instances 'wrote' OUTPUT."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str, int]] = []

    async def logs(self, deployment_id: str, lines: int = 100) -> list[str]:
        self.asked.append((deployment_id, lines))
        return OUTPUT[-lines:]


@pytest.fixture
async def served(
    engine: AsyncEngine, session: AsyncSession, secret_key: str, tmp_path: Path
) -> AsyncIterator[tuple[GraphQLClient, World, LoggingRuntime]]:
    """The API with a bus on which a worker's LogReader answers for the local data plane, and
    the governed world, its Invoices deployment having run with SECRET as its secret."""
    bus = InProcessBus()
    runtime = LoggingRuntime()
    box = SecretBox(secret_key)
    reader = LogReader(create_session_factory(engine), box, runtime, LOCAL_ROUTING_KEY)
    responding = await bus.serve_requests(LOCAL_ROUTING_KEY, reader.answer)
    app = create_app(Settings(data_dir=tmp_path, secret_key=secret_key), engine=engine, bus=bus)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://promenade.test"
    ) as http:
        api = GraphQLClient(http, session)
        world = await governed_world(api, session)
        session.add(
            DeploymentChange(
                organization_id=world.org.id,
                deployment_id=world.invoices.source_deployment_id,
                kind=ChangeKind.DEPLOY,
                status=ChangeStatus.SUCCEEDED,
                build_id=world.invoices.build_id,
                snapshot_sealed=box.seal_json({"GREETING": "hi", SECRET_KEY: SECRET}),
            )
        )
        await session.commit()
        yield api, world, runtime
    await responding.stop()
    await bus.close()


async def logs_as(api: GraphQLClient, user: Any, deployment_id: str, lines: int = 100) -> Any:
    return await api.raw(LOGS, {"id": deployment_id, "lines": lines}, as_user=user)


async def test_a_developer_reads_the_last_lines_with_secrets_masked(
    served: tuple[GraphQLClient, World, LoggingRuntime],
) -> None:
    api, world, runtime = served
    deployment = world.invoices.source_deployment_id
    for user in (world.developer, world.admin):
        body = await logs_as(api, user, deployment, lines=4)
        assert "errors" not in body, body
        lines = body["data"]["deployment"]["logs"]
        # The value split over two lines is found too (and the two lines become one).
        assert lines == [
            "connecting with [secret]",
            "the key again, split: [secret] (end)",
            "ready",
        ]
        assert SECRET not in "\n".join(lines)
    assert runtime.asked[-1] == (deployment, 4)


async def test_viewers_and_approvers_may_not_read_logs(
    served: tuple[GraphQLClient, World, LoggingRuntime],
) -> None:
    api, world, runtime = served
    for name in ("viewer", "approver"):
        body = await logs_as(api, world.members[name], world.invoices.source_deployment_id)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert "may not read logs" in error["message"]
        assert body["data"] is None or body["data"]["deployment"] is None
    assert runtime.asked == []


async def test_another_organizations_deployment_is_not_found(
    served: tuple[GraphQLClient, World, LoggingRuntime],
) -> None:
    api, world, runtime = served
    body = await logs_as(api, world.outsider, world.invoices.source_deployment_id)
    assert body == {"data": {"deployment": None}, "status_code": 200}
    assert runtime.asked == []


async def test_bad_line_counts_and_absent_workers_are_errors_that_say_so(
    served: tuple[GraphQLClient, World, LoggingRuntime],
    engine: AsyncEngine,
    session: AsyncSession,
    secret_key: str,
    tmp_path: Path,
) -> None:
    api, world, _ = served
    for lines in (0, 1001):
        body = await logs_as(api, world.developer, world.invoices.source_deployment_id, lines)
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "VALIDATION_ERROR"
        assert "lines must be between 1 and 1000" in error["message"]

    # An API whose bus no worker answers on.
    app = create_app(
        Settings(data_dir=tmp_path, secret_key=secret_key), engine=engine, bus=InProcessBus()
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://promenade.test"
    ) as http:
        lonely = GraphQLClient(http, session)
        body = await logs_as(lonely, world.developer, world.invoices.source_deployment_id)
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "no worker of the data plane 'local' answered" in error["message"]


async def test_only_developers_and_admins_see_an_instances_output_in_failures(
    served: tuple[GraphQLClient, World, LoggingRuntime], engine: AsyncEngine
) -> None:
    api, world, _ = served
    failure = with_output("exited with code 3", ["greeter: the key is [secret]", "bye"])
    deployment_id = world.invoices.source_deployment_id
    async with engine.begin() as database:
        await database.execute(
            update(Deployment).where(col(Deployment.id) == deployment_id).values(last_error=failure)
        )
    query = "query($id: ID!) { deployment(id: $id) { lastError } }"
    for user, sees in (
        (world.admin, failure),
        (world.developer, failure),
        (world.members["viewer"], "exited with code 3"),
        (world.approver, "exited with code 3"),
    ):
        data = await api.execute(query, {"id": deployment_id}, as_user=user)
        assert data["deployment"]["lastError"] == sees
