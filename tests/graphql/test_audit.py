"""The audit log: one entry per state-changing action and per worker outcome, who, what, on
which object, when; ADMIN only, newest first, in pages; and no secret value in it, nor in any
API answer or log line (a canary secret, searched everywhere).

The flows run with the engine in-process (see tests/graphql/governance.py), so that the worker's
outcomes (change.succeeded, change.failed) are recorded for real.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.crypto import SecretBox
from app.db import create_session_factory
from app.models import (
    AuditEvent,
    ConfigValue,
    DeploymentChange,
    OutboxMessage,
    Promotion,
    PromotionEvent,
)
from app.models.base import utcnow
from app.sweeps import ExpirySweep
from tests.graphql.governance import (
    APPROVE,
    AUDIT_LOG,
    CANCEL,
    FREEZE,
    PLAN,
    PROMOTION,
    REJECT,
    REMOVE_POLICY,
    SECRET_KEY,
    SET_CONFIGURATION,
    UNFREEZE,
    World,
    expect,
    governed_world,
    promote,
    reading,
    review,
    running_engine,
    set_policy,
    status_becomes,
)
from tests.graphql.queries import call, create_environment
from tests.support.graphql_client import GraphQLClient
from tests.support.process_logs import json_lines, process_logging
from tests.support.runtimes import FakeRuntime

DEPLOYMENT_IDS = """
query($id: ID!) { integration(id: $id) { deployments { id environment { name } } } }
"""


async def production_deployment(api: GraphQLClient, world: World, integration_id: str) -> str:
    data = await api.execute(DEPLOYMENT_IDS, {"id": integration_id}, as_user=world.admin)
    [deployment_id] = [
        d["id"]
        for d in data["integration"]["deployments"]
        if d["environment"]["name"] == "Production"
    ]
    return str(deployment_id)


@dataclass
class Flow:
    """What ``run_every_action`` did, in order: (action, actor email or None, subject id)."""

    entries: list[tuple[str, str | None, str]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)


async def run_every_action(
    api: GraphQLClient, world: World, engine: AsyncEngine, box: SecretBox, secret: str
) -> tuple[Flow, FakeRuntime]:
    """Every governance action, and a promotion that succeeds and one that fails on the worker;
    ``secret`` goes in as a secret configuration value and as a secret override."""
    flow = Flow()
    admin, developer = world.admin, world.developer
    approver, approver2 = world.approver, world.members["approver2"]
    invoices_prod = await production_deployment(api, world, world.invoices.id)
    payments_prod = await production_deployment(api, world, world.payments.id)
    flow.ids.update(invoices_prod=invoices_prod, payments_prod=payments_prod)

    staging = await create_environment(api, world.org, "Staging", "stg")
    flow.entries.append(("environment.created", admin.email, staging))

    expect(await set_policy(api, world, required=1), "Environment")
    flow.entries.append(("environment.approval_policy.set", admin.email, world.production))

    configured = await call(
        api,
        SET_CONFIGURATION,
        {
            "input": {
                "integrationId": world.invoices.id,
                "environmentId": world.production,
                "entries": [
                    {"key": "GREETING", "value": "hello"},
                    {"key": SECRET_KEY, "value": f"{secret}-configured"},
                ],
            }
        },
        as_user=developer,
    )
    expect(configured, "Deployment")
    flow.entries.append(("configuration.set", developer.email, invoices_prod))

    # What a promotion would change, with a secret override: masked.
    await api.execute(
        PLAN,
        {
            "input": {
                "integrationId": world.invoices.id,
                "sourceEnvironmentId": world.development,
                "overrides": [{"key": SECRET_KEY, "value": f"{secret}-planned"}],
            }
        },
        as_user=developer,
    )

    runtime = FakeRuntime()
    async with running_engine(engine, box, runtime):
        # Approved, then run to SUCCEEDED by the worker.
        succeeded = expect(
            await promote(
                api, world, overrides=[{"key": SECRET_KEY, "value": f"{secret}-override"}]
            ),
            "Promotion",
        )
        flow.ids["succeeded"] = succeeded["id"]
        flow.entries.append(("promotion.requested", developer.email, succeeded["id"]))
        expect(await review(api, APPROVE, succeeded["id"], as_user=approver), "Promotion")
        flow.entries.append(("promotion.approved", approver.email, succeeded["id"]))
        await status_becomes(api, world, succeeded["id"], "SUCCEEDED")
        flow.entries.append(("change.succeeded", developer.email, invoices_prod))

        # Rejected.
        rejected = expect(
            await promote(
                api,
                world,
                integration=world.payments,
                overrides=[{"key": SECRET_KEY, "value": f"{secret}-rejected"}],
            ),
            "Promotion",
        )
        flow.entries.append(("promotion.requested", developer.email, rejected["id"]))
        expect(
            await review(api, REJECT, rejected["id"], as_user=approver2, comment="not today"),
            "Promotion",
        )
        flow.entries.append(("promotion.rejected", approver2.email, rejected["id"]))

        # Cancelled by its requester.
        cancelled = expect(
            await promote(
                api,
                world,
                integration=world.payments,
                overrides=[{"key": SECRET_KEY, "value": f"{secret}-cancelled"}],
            ),
            "Promotion",
        )
        flow.entries.append(("promotion.requested", developer.email, cancelled["id"]))
        expect(await review(api, CANCEL, cancelled["id"], as_user=developer), "Promotion")
        flow.entries.append(("promotion.cancelled", developer.email, cancelled["id"]))

        # Expired: the shortest expiry is an hour, so the request's expiry is moved into the
        # past in the database rather than waited for.
        expect(await set_policy(api, world, required=1, expiresAfterHours=1), "Environment")
        flow.entries.append(("environment.approval_policy.set", admin.email, world.production))
        expired = expect(
            await promote(
                api,
                world,
                integration=world.payments,
                overrides=[{"key": SECRET_KEY, "value": f"{secret}-expired"}],
            ),
            "Promotion",
        )
        flow.entries.append(("promotion.requested", developer.email, expired["id"]))
        async with reading(engine) as db:
            await db.exec(
                update(Promotion)
                .where(col(Promotion.id) == expired["id"])
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )
            await db.commit()
        assert await ExpirySweep(create_session_factory(engine), interval_s=60).sweep() == 1
        flow.entries.append(("promotion.expired", None, expired["id"]))

        # No policy any more: queued at once, and the worker fails to start it.
        removed = await call(api, REMOVE_POLICY, {"environmentId": world.production}, as_user=admin)
        expect(removed, "Environment")
        flow.entries.append(("environment.approval_policy.removed", admin.email, world.production))
        runtime.failure = "the instance exited with code 3"
        failed = expect(
            await promote(
                api,
                world,
                integration=world.payments,
                overrides=[{"key": SECRET_KEY, "value": f"{secret}-failed"}],
            ),
            "Promotion",
        )
        flow.ids["failed"] = failed["id"]
        flow.entries.append(("promotion.requested", developer.email, failed["id"]))
        await status_becomes(api, world, failed["id"], "FAILED")
        flow.entries.append(("change.failed", developer.email, payments_prod))

    frozen = await call(
        api, FREEZE, {"id": world.production, "reason": "maintenance"}, as_user=admin
    )
    expect(frozen, "Environment")
    flow.entries.append(("environment.frozen", admin.email, world.production))
    expect(await call(api, UNFREEZE, {"id": world.production}, as_user=admin), "Environment")
    flow.entries.append(("environment.unfrozen", admin.email, world.production))

    for promotion_id in [succeeded["id"], rejected["id"], expired["id"], failed["id"]]:
        await api.execute(PROMOTION, {"id": promotion_id}, as_user=admin)
    return flow, runtime


async def audit_log(
    api: GraphQLClient, world: World, *, page: int = 50, as_user: Any = None
) -> list[dict[str, Any]]:
    """Every entry of the organization's log, newest first, read page by page."""
    entries: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        data = await api.execute(
            AUDIT_LOG,
            {"slug": world.org.slug, "first": page, "after": after},
            as_user=as_user or world.admin,
        )
        connection = data["organization"]["auditLog"]
        entries += [edge["node"] for edge in connection["edges"]]
        assert len(connection["edges"]) <= page
        if not connection["pageInfo"]["hasNextPage"]:
            assert connection["totalCount"] == len(entries)
            return entries
        after = connection["pageInfo"]["endCursor"]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_every_action_records_one_entry_with_actor_subject_and_time(
    api: GraphQLClient, session: AsyncSession, engine: AsyncEngine, box: SecretBox
) -> None:
    world = await governed_world(api, session)
    setup = list(reversed(await audit_log(api, world)))
    # The foundation's actions are in the log too, with their actor.
    assert [(e["action"], e["actor"]["email"]) for e in setup] == [
        ("organization.created", world.admin.email),
        *[("member.added", world.admin.email)] * 5,
        ("project.created", world.admin.email),
        ("integration.created", world.admin.email),
        ("build.created", world.admin.email),
        ("integration.created", world.admin.email),
        ("build.created", world.admin.email),
    ]
    assert setup[0]["subjectId"] == world.org.id

    started = utcnow()
    flow, _ = await run_every_action(api, world, engine, box, "not-a-canary")
    finished = utcnow()

    entries = list(reversed(await audit_log(api, world)))[len(setup) :]
    assert [
        (e["action"], e["actor"]["email"] if e["actor"] else None, e["subjectId"]) for e in entries
    ] == flow.entries
    for entry in entries:
        assert started <= parse_time(entry["at"]) <= finished, entry
    assert [parse_time(e["at"]) for e in entries] == sorted(parse_time(e["at"]) for e in entries)

    # Details say what was done, naming keys, never values.
    details: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        details.setdefault(entry["action"], []).append(entry["detail"])
    assert details["configuration.set"] == [
        {
            "environment_id": world.production,
            "keys_set": ["GREETING", SECRET_KEY],
            "keys_removed": [],
        }
    ]
    requested = details["promotion.requested"][0]
    assert requested["override_keys"] == [SECRET_KEY]
    assert (requested["build"], requested["source"], requested["target"]) == (
        "1.0.0",
        "Development",
        "Production",
    )
    assert details["promotion.rejected"] == [{"comment": "not today"}]
    assert details["environment.frozen"] == [{"reason": "maintenance"}]
    assert details["environment.approval_policy.set"][1]["expires_after_hours"] == 1
    [succeeded] = details["change.succeeded"]
    assert (succeeded["kind"], succeeded["revision"], succeeded["promotion_id"]) == (
        "PROMOTION",
        1,
        flow.ids["succeeded"],
    )
    [failed] = details["change.failed"]
    assert failed["promotion_id"] == flow.ids["failed"]
    assert "exited with code 3" in failed["reason"]

    # Another organization's log holds none of it.
    theirs = await api.execute(AUDIT_LOG, {"slug": world.other.slug}, as_user=world.outsider)
    assert [e["node"]["action"] for e in theirs["organization"]["auditLog"]["edges"]] == [
        "organization.created"
    ]


async def test_the_log_pages_newest_first_for_admins_only(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    await set_policy(api, world, required=1)
    expect(await promote(api, world), "Promotion")
    everything = await audit_log(api, world, page=100)
    assert len(everything) == 13
    assert everything[0]["action"] == "promotion.requested"
    assert everything[-1]["action"] == "organization.created"
    times = [parse_time(e["at"]) for e in everything]
    assert times == sorted(times, reverse=True)
    # Pages of 4 give the same entries, in the same order, each once.
    assert await audit_log(api, world, page=4) == everything
    first = await api.execute(AUDIT_LOG, {"slug": world.org.slug, "first": 4}, as_user=world.admin)
    connection = first["organization"]["auditLog"]
    assert (connection["totalCount"], connection["pageInfo"]["hasNextPage"]) == (13, True)
    assert [edge["node"] for edge in connection["edges"]] == everything[:4]

    for name in ("developer", "approver", "viewer"):
        body = await api.raw(AUDIT_LOG, {"slug": world.org.slug}, as_user=world.members[name])
        assert body["data"] is None or body["data"]["organization"] is None, (name, body)
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN", (name, body)
        assert "ADMIN" in error["message"]
    outsider = await api.execute(AUDIT_LOG, {"slug": world.org.slug}, as_user=world.outsider)
    assert outsider == {"organization": None}


async def test_a_canary_secret_appears_in_no_audit_detail_answer_or_log_line(
    api: GraphQLClient,
    session: AsyncSession,
    engine: AsyncEngine,
    box: SecretBox,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    api.http.event_hooks["response"].append(keep)
    canary = f"canary-{secrets.token_hex(16)}"
    # The worker's log as a server process writes it (configure_logging), JSON lines.
    with process_logging(caplog, "json") as process_log:
        caplog.set_level(logging.DEBUG)  # after it: DEBUG lines reach its handler too
        world = await governed_world(api, session)
        flow, runtime = await run_every_action(api, world, engine, box, canary)
    process_lines = json_lines(process_log.getvalue())

    # The canary did go in: the runtime was given the secret (it is the only one that may).
    assert any(canary in value for spec in runtime.started for value in spec.values.values())
    # ...and it is stored, encrypted, where the API put it.
    async with reading(engine) as db:
        assert (await db.exec(select(ConfigValue))).all()
    # ...and the answers were recorded: among them the request's overrides, masked.
    assert any(f'{{"key":"{SECRET_KEY}","value":null,"secret":true}}' in b for b in bodies)
    assert caplog.records, "logging was captured"
    assert process_lines, "the process's handler wrote"

    # Nowhere else.
    async with reading(engine) as db:
        audit = [json.dumps(row.detail) for row in (await db.exec(select(AuditEvent))).all()]
        events = [str(row.detail) for row in (await db.exec(select(PromotionEvent))).all()]
        outbox = [json.dumps(row.body) for row in (await db.exec(select(OutboxMessage))).all()]
        errors = [str(row.error) for row in (await db.exec(select(DeploymentChange))).all()]
        errors += [str(row.error) for row in (await db.exec(select(Promotion))).all()]
    assert len(audit) > 20
    places = {
        "audit detail": audit,
        "promotion event": events,
        "outbox message": outbox,
        "error": errors,
        "GraphQL response": bodies,
        "log record": [record.getMessage() for record in caplog.records],
        "log text": [caplog.text],
        "process log line": [json.dumps(line) for line in process_lines],
        "process log": [process_log.getvalue()],
        "stdout/stderr": list(capsys.readouterr()),
    }
    for place, texts in places.items():
        leaks = [text for text in texts if canary in text]
        assert leaks == [], f"the canary secret appears in a {place}: {leaks[:3]}"
    assert flow.entries
