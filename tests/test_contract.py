"""The exported schema keeps the API contract, except for what later issues build.

The allow-list below names every part of the contract that is not built yet, grouped by the
issue that builds it (the promotion engine, issue 3, has built its part: deploy, promote,
revisions, plans and promotion events). Any other breaking change fails the test, and so does
an allow-listed item that is no longer a breaking change: take it off the list when its issue
lands.
"""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes

ROOT = Path(__file__).parents[1]
SCHEMA_FILE = ROOT / "schema.graphql"
# CI lays shared/ beside the clone; so does a developer's work tree.
CONTRACT_FILE = ROOT.parent / "shared" / "design" / "api-contract.graphql"

# Issue 4, live status: the subscriptions, and DeploymentEvent, which only they return.
LIVE_STATUS_TYPES = ["Subscription", "DeploymentEvent"]
LIVE_STATUS_FIELDS: list[str] = []

# Issue 5, approvals, freezes and the audit log.
GOVERNANCE_TYPES = [
    "ApprovalPolicy",
    "ApprovalPolicyInput",
    "AuditEvent",
    "AuditEventEdge",
    "AuditEventConnection",
]
GOVERNANCE_FIELDS = [
    "Organization.pendingApprovals",
    "Organization.auditLog",
    "Environment.approvalPolicy",
    "Mutation.setApprovalPolicy",
    "Mutation.removeApprovalPolicy",
    "Mutation.freezeEnvironment",
    "Mutation.unfreezeEnvironment",
    "Mutation.approvePromotion",
    "Mutation.rejectPromotion",
    "Mutation.cancelPromotion",
]

NOT_BUILT_YET = {
    *(f"TYPE_REMOVED: {name} was removed." for name in LIVE_STATUS_TYPES + GOVERNANCE_TYPES),
    *(
        f"FIELD_REMOVED: Field {name} was removed."
        for name in LIVE_STATUS_FIELDS + GOVERNANCE_FIELDS
    ),
}


def breaking_changes(contract_sdl: str, schema_sdl: str) -> set[str]:
    changes = find_breaking_changes(build_schema(contract_sdl), build_schema(schema_sdl))
    return {f"{change.type.name}: {change.description}" for change in changes}


def test_schema_keeps_the_contract_except_what_later_issues_build() -> None:
    assert CONTRACT_FILE.exists(), (
        f"the API contract is not at {CONTRACT_FILE}: this test needs the shared/ folder "
        "beside the repository (shared/design/api-contract.graphql)"
    )
    actual = breaking_changes(CONTRACT_FILE.read_text(), SCHEMA_FILE.read_text())

    unexpected = sorted(actual - NOT_BUILT_YET)
    assert not unexpected, "the schema breaks the contract:\n" + "\n".join(unexpected)

    now_built = sorted(NOT_BUILT_YET - actual)
    assert not now_built, (
        "these parts of the contract are built now: take them off the allow-list in "
        "tests/test_contract.py:\n" + "\n".join(now_built)
    )
