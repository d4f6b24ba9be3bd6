"""Approval rules through the API: a policy of several rules is set and read back with each
rule's reviewers; a bad rule is a ValidationError naming its field and changes nothing; a
request shows each rule's progress, reaches the named reviewer's pendingApprovals, and runs
only once every rule is met."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from tests.graphql.governance import (
    APPROVE,
    PENDING_APPROVALS,
    World,
    expect,
    governed_world,
    promote,
    refused_without_change,
    review,
    set_policy,
)
from tests.graphql.queries import call, mutation
from tests.support.graphql_client import GraphQLClient

RULES_POLICY = mutation(
    "$input: ApprovalPolicyInput!",
    "setApprovalPolicy(input: $input)",
    """... on Environment { approvalPolicy {
        requiredApprovals approverRoles approvers { email }
        rules { name requiredApprovals approverRoles approvers { email } }
    } }
    ... on ValidationError { field }""",
)
PROGRESS = """query($id: ID!) { promotion(id: $id) { status requiredApprovals
    approvalRules { rule { name } approvals met approvedBy { email } } } }"""


def rules(world: World) -> list[dict[str, Any]]:
    """1 from QA (developer2, named) and 2 from Operators (the APPROVER role)."""
    return [
        {"name": "QA", "requiredApprovals": 1, "approverIds": [world.members["developer2"].id]},
        {"name": "Operators", "requiredApprovals": 2, "approverRoles": ["APPROVER"]},
    ]


async def set_rules(api: GraphQLClient, world: World, given: Any) -> dict[str, Any]:
    return await call(
        api,
        RULES_POLICY,
        {"input": {"environmentId": world.production, "rules": given}},
        as_user=world.admin,
    )


async def progress(api: GraphQLClient, world: World, promotion_id: str) -> dict[str, Any]:
    data = await api.execute(PROGRESS, {"id": promotion_id}, as_user=world.admin)
    result: dict[str, Any] = data["promotion"]
    return result


async def test_a_policy_of_rules_is_set_and_read_back(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    qa = world.members["developer2"]
    policy = expect(await set_rules(api, world, rules(world)), "Environment")["approvalPolicy"]
    assert policy == {
        "requiredApprovals": 3,
        "approverRoles": ["APPROVER"],
        "approvers": [{"email": qa.email}],
        "rules": [
            {
                "name": "QA",
                "requiredApprovals": 1,
                "approverRoles": [],
                "approvers": [{"email": qa.email}],
            },
            {
                "name": "Operators",
                "requiredApprovals": 2,
                "approverRoles": ["APPROVER"],
                "approvers": [],
            },
        ],
    }
    # A policy set the original way reads as one rule.
    single = expect(await set_policy(api, world, required=2), "Environment")
    assert single["approvalPolicy"]["requiredApprovals"] == 2
    read = await call(
        api,
        RULES_POLICY,
        {"input": {"environmentId": world.production, "requiredApprovals": 2}},
        as_user=world.admin,
    )
    assert expect(read, "Environment")["approvalPolicy"]["rules"] == [
        {
            "name": "Reviewers",
            "requiredApprovals": 2,
            "approverRoles": ["ADMIN", "APPROVER"],
            "approvers": [],
        }
    ]


async def test_a_bad_rule_is_a_validation_error_naming_its_field(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    good = rules(world)
    cases: list[tuple[Any, str]] = [
        ([], "rules"),
        ([good[0], {**good[1], "name": "qa"}], "rules[1].name"),
        ([good[0], {**good[1], "requiredApprovals": 0}], "rules[1].requiredApprovals"),
        ([{**good[0], "requiredApprovals": 2}], "rules[0].requiredApprovals"),
        ([{"name": "Nobody", "requiredApprovals": 1}], "rules[0].approverRoles"),
    ]
    for given, field in cases:
        result = await set_rules(api, world, given)
        assert (result["__typename"], result["field"]) == ("ValidationError", field), given
    await refused_without_change(
        api,
        world,
        [
            (
                "both forms",
                lambda: call(
                    api,
                    RULES_POLICY,
                    {
                        "input": {
                            "environmentId": world.production,
                            "requiredApprovals": 1,
                            "rules": good,
                        }
                    },
                    as_user=world.admin,
                ),
                "ValidationError",
                "not both",
            ),
            (
                "another organization's reviewer",
                lambda: set_rules(api, world, [{**good[0], "approverIds": [world.outsider.id]}]),
                "NotFoundError",
                "no member of the organization",
            ),
            (
                "by a developer",
                lambda: call(
                    api,
                    RULES_POLICY,
                    {"input": {"environmentId": world.production, "rules": good}},
                    as_user=world.developer,
                ),
                "ForbiddenError",
                None,
            ),
        ],
    )


async def test_a_request_shows_each_rules_progress_and_runs_when_all_are_met(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    qa = world.members["developer2"]
    expect(await set_rules(api, world, rules(world)), "Environment")
    request = expect(await promote(api, world), "Promotion")
    assert (request["status"], request["requiredApprovals"]) == ("PENDING_APPROVAL", 3)
    # The named QA reviewer, a DEVELOPER, has it among the requests to review.
    pending = await api.execute(PENDING_APPROVALS, {"slug": world.org.slug}, as_user=qa)
    edges = pending["organization"]["pendingApprovals"]["edges"]
    assert [edge["node"]["id"] for edge in edges] == [request["id"]]

    for operator in ("approver", "approver2"):
        approved = await review(api, APPROVE, request["id"], as_user=world.members[operator])
        assert expect(approved, "Promotion")["status"] == "PENDING_APPROVAL"
    waiting = await progress(api, world, request["id"])
    assert waiting["approvalRules"] == [
        {"rule": {"name": "QA"}, "approvals": 0, "met": False, "approvedBy": []},
        {
            "rule": {"name": "Operators"},
            "approvals": 2,
            "met": True,
            "approvedBy": [
                {"email": world.members["approver"].email},
                {"email": world.members["approver2"].email},
            ],
        },
    ]
    last = expect(await review(api, APPROVE, request["id"], as_user=qa), "Promotion")
    assert last["status"] == "QUEUED"
    assert last["events"][-1]["detail"] == "approved (QA 1/1, Operators 2/2)"
    done = await progress(api, world, request["id"])
    assert [rule["met"] for rule in done["approvalRules"]] == [True, True]


async def test_a_promotion_that_needed_no_review_has_no_rules(
    api: GraphQLClient, session: AsyncSession
) -> None:
    world = await governed_world(api, session)
    queued = expect(await promote(api, world), "Promotion")
    assert queued["status"] == "QUEUED"
    assert (await progress(api, world, queued["id"]))["approvalRules"] == []
