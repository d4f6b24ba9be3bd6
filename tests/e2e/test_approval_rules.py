"""Approval rules through real processes: Production needs 1 approval from QA (a named
member) and 2 from Operators (the APPROVER role). Two operators approve and nothing runs; QA's
approval queues it, and the worker that takes the change is killed half-way. Another worker
finishes it, once: Production runs the build (one revision) with its own configuration."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.graphql_client import GraphQLClient, graphql_over_http
from tests.support.greeter import greeting, new_greeter
from tests.support.installations import Cluster, admin_token

DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PRODUCTION = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}
PAUSED = "pausing after APPLYING_CONFIGURATION"

ADD_MEMBER = """mutation($input: AddMemberInput!) { addMember(input: $input) {
    __typename ... on Error { code message } ... on Membership { role user { id } } } }"""
SET_POLICY = """mutation($input: ApprovalPolicyInput!) { setApprovalPolicy(input: $input) {
    __typename ... on Error { code message }
    ... on Environment { approvalPolicy { requiredApprovals rules { name requiredApprovals } } }
} }"""
APPROVE = """mutation($id: ID!) { approvePromotion(id: $id) {
    __typename ... on Error { code message } ... on Promotion { id status } } }"""
PROGRESS = """query($id: ID!) { promotion(id: $id) { status requiredApprovals
    approvalRules { rule { name requiredApprovals } approvals met approvedBy { email } } } }"""


async def test_two_rules_must_both_be_met_and_the_change_runs_once_with_a_worker_killed(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    first = workers.start_worker()
    await greeter.deploy(DEVELOPMENT)
    first.kill()
    org_id = (
        await api.execute(
            "query($s: String!) { organization(slug: $s) { id } }", {"s": greeter.organization}
        )
    )["organization"]["id"]
    users: dict[str, str] = {}
    for name, role in [("qa", "DEVELOPER"), ("op1", "APPROVER"), ("op2", "APPROVER")]:
        email = f"{name}@{greeter.organization}.test"
        member = await api.ok(
            ADD_MEMBER, {"input": {"organizationId": org_id, "email": email, "role": role}}
        )
        users[name] = member["user"]["id"]
    policy = await api.ok(
        SET_POLICY,
        {
            "input": {
                "environmentId": greeter.environments["Production"],
                "rules": [
                    {"name": "QA", "requiredApprovals": 1, "approverIds": [users["qa"]]},
                    {"name": "Operators", "requiredApprovals": 2, "approverRoles": ["APPROVER"]},
                ],
            }
        },
    )
    assert policy["approvalPolicy"] == {
        "requiredApprovals": 3,
        "rules": [
            {"name": "QA", "requiredApprovals": 1},
            {"name": "Operators", "requiredApprovals": 2},
        ],
    }

    request: dict[str, Any] = await greeter.promote("Development", overrides=PRODUCTION)
    assert request["status"] == "PENDING_APPROVAL", request

    async def approve_as(name: str) -> dict[str, Any]:
        token = await admin_token(
            workers.env["PROMENADE_DATABASE_URL"], f"{name}@{greeter.organization}.test"
        )
        async with graphql_over_http(workers.api_url, token) as client:
            return await client.ok(APPROVE, {"id": request["id"]})

    async def progress() -> dict[str, Any]:
        data = await api.execute(PROGRESS, {"id": request["id"]})
        promotion: dict[str, Any] = data["promotion"]
        return promotion

    for operator in ("op1", "op2"):
        assert (await approve_as(operator))["status"] == "PENDING_APPROVAL"
    waiting = await progress()
    assert waiting["requiredApprovals"] == 3
    assert [
        (r["rule"]["name"], r["approvals"], r["met"], [u["email"] for u in r["approvedBy"]])
        for r in waiting["approvalRules"]
    ] == [
        ("QA", 0, False, []),
        (
            "Operators",
            2,
            True,
            [f"op1@{greeter.organization}.test", f"op2@{greeter.organization}.test"],
        ),
    ]
    assert (await greeter.deployment("Production"))["revision"] == 0  # nothing ran

    paused = workers.start_worker(pause_after_step="APPLYING_CONFIGURATION")
    assert (await approve_as("qa"))["status"] == "QUEUED"
    await asyncio.to_thread(paused.wait_for_log, PAUSED)
    paused.kill()
    workers.start_worker()  # takes over once the dead worker's lease expires

    finished = await greeter.wait_promotion(request["id"], within=60)
    assert finished["status"] == "SUCCEEDED", finished
    assert [r["met"] for r in (await progress())["approvalRules"]] == [True, True]
    production = await greeter.wait_revision("Production", 1)
    assert production["history"]["totalCount"] == 1  # applied once
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == PRODUCTION["GREETING"]
