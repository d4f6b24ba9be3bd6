"""/readyz through real HTTP: the API is ready while its database answers at the migrations'
head and its broker answers, and says which part is not otherwise; the worker's own
endpoints say the same of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from app.db import create_engine
from app.main import create_app
from app.messaging.rabbit import RabbitBus
from app.processes.operations import operations_app
from app.settings import Settings
from tests.messaging.conftest import TEST_RECONNECT_INTERVAL
from tests.support.servers import serve
from tests.support.statements import statements
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import eventually


async def readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(f"{url}/readyz", timeout=10)
    return response.status_code, response.json()


def not_ready(body: dict[str, Any]) -> dict[str, str]:
    return {
        name: part.get("detail", "") for name, part in body["parts"].items() if not part["ready"]
    }


async def answers(url: str, status: int, *, unready: set[str]) -> dict[str, Any] | None:
    code, body = await readyz(url)
    return body if code == status and set(not_ready(body)) == unready else None


@pytest.fixture
async def proxies(postgres_url: str, amqp_url: str) -> AsyncIterator[tuple[TcpProxy, TcpProxy]]:
    database, broker = TcpProxy(postgres_url), TcpProxy(amqp_url)
    await database.up()
    await broker.up()
    try:
        yield database, broker
    finally:
        await broker.down()
        await database.down()


async def test_the_api_says_which_part_is_not_ready_until_it_is_again(
    proxies: tuple[TcpProxy, TcpProxy], postgres_url: str, tmp_path: Path
) -> None:
    database, broker = proxies
    settings = Settings(data_dir=tmp_path, secret_key=Fernet.generate_key().decode())
    engine = create_engine(database.url)
    bus = RabbitBus(broker.url, reconnect_interval=TEST_RECONNECT_INTERVAL)
    app = create_app(settings, engine=engine, bus=bus, owns_bus=True)
    async with serve(app) as url:
        code, body = await readyz(url)
        assert (code, body["status"]) == (200, "ready")
        assert set(body["parts"]) == {"database", "migrations", "broker"}

        await broker.down()
        body = await eventually(
            lambda: answers(url, 503, unready={"broker"}), what="the broker not ready"
        )
        assert body["status"] == "not ready"
        await broker.up()
        await eventually(lambda: answers(url, 200, unready=set()), what="ready again")

        await database.down()
        body = await eventually(
            lambda: answers(url, 503, unready={"database", "migrations"}),
            what="the database not ready",
        )
        assert "does not answer" in not_ready(body)["database"]
        # What the failure is, never its text: no URL, no password, no host.
        assert "postgres" not in str(body) and "127.0.0.1" not in str(body)
        await database.up()
        await eventually(lambda: answers(url, 200, unready=set()), what="ready again")

        # A newer release migrated the database: this replica's code is behind it.
        admin = create_engine(postgres_url)
        try:
            async with admin.begin() as connection:
                (current,) = (
                    await connection.execute(text("SELECT version_num FROM alembic_version"))
                ).one()
                await connection.execute(text("UPDATE alembic_version SET version_num = 'newer'"))
            try:
                body = await eventually(
                    lambda: answers(url, 503, unready={"migrations"}), what="migrations behind"
                )
                assert "run promenade migrate" in not_ready(body)["migrations"]
            finally:
                async with admin.begin() as connection:
                    await connection.execute(
                        text("UPDATE alembic_version SET version_num = :v"), {"v": current}
                    )
        finally:
            await admin.dispose()
        await eventually(lambda: answers(url, 200, unready=set()), what="ready again")
    await engine.dispose()


async def test_a_worker_is_ready_once_it_consumes_its_queues(
    proxies: tuple[TcpProxy, TcpProxy],
) -> None:
    database, broker = proxies
    engine = create_engine(database.url)
    bus = RabbitBus(broker.url, reconnect_interval=TEST_RECONNECT_INTERVAL)
    consuming = False
    app = operations_app(engine, bus, consuming=lambda: consuming)
    try:
        async with serve(app) as url:
            async with httpx.AsyncClient(trust_env=False) as client:
                health = await client.get(f"{url}/healthz")
                metrics = await client.get(f"{url}/metrics")
            assert health.status_code == 200
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain; version=")
            assert "# TYPE" in metrics.text

            body = await eventually(
                lambda: answers(url, 503, unready={"consumers"}), what="not consuming yet"
            )
            assert "not consuming" in not_ready(body)["consumers"]
            consuming = True
            await eventually(lambda: answers(url, 200, unready=set()), what="ready")
            await broker.down()
            await eventually(lambda: answers(url, 503, unready={"broker"}), what="broker down")
    finally:
        await bus.close()
        await engine.dispose()


async def test_a_crowd_asking_readyz_shares_one_check(
    proxies: tuple[TcpProxy, TcpProxy], tmp_path: Path
) -> None:
    """/readyz needs no token: a flood of callers costs the database one check at a time (and
    one a second at most), so it cannot make the replica look down by asking."""
    database, broker = proxies
    settings = Settings(data_dir=tmp_path, secret_key=Fernet.generate_key().decode())
    engine = create_engine(database.url)
    bus = RabbitBus(broker.url, reconnect_interval=TEST_RECONNECT_INTERVAL)
    app = create_app(settings, engine=engine, bus=bus, owns_bus=True)
    async with serve(app) as url:
        with statements(engine) as sent:
            answers = await asyncio.gather(*(readyz(url) for _ in range(100)))
        assert {code for code, _ in answers} == {200}
        checks = [s for s in sent if "alembic_version" in s]
        # Without sharing: one check per caller (100).
        assert 1 <= len(checks) < 10, len(checks)
    await engine.dispose()
