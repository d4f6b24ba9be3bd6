"""The exported schema keeps the API contract: no type, field, argument or enum value of the
contract is missing or changed incompatibly (the schema may add to it)."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes

ROOT = Path(__file__).parents[1]
SCHEMA_FILE = ROOT / "schema.graphql"
# CI lays shared/ beside the clone; so does a developer's work tree.
CONTRACT_FILE = ROOT.parent / "shared" / "design" / "api-contract.graphql"


def breaking_changes(contract_sdl: str, schema_sdl: str) -> list[str]:
    changes = find_breaking_changes(build_schema(contract_sdl), build_schema(schema_sdl))
    return sorted(f"{change.type.name}: {change.description}" for change in changes)


def test_schema_keeps_the_contract() -> None:
    assert CONTRACT_FILE.exists(), (
        f"the API contract is not at {CONTRACT_FILE}: this test needs the shared/ folder "
        "beside the repository (shared/design/api-contract.graphql)"
    )
    broken = breaking_changes(CONTRACT_FILE.read_text(), SCHEMA_FILE.read_text())
    assert not broken, "the schema breaks the contract:\n" + "\n".join(broken)


def test_the_check_finds_a_removed_field() -> None:
    """The check itself: a schema without a contract field is reported."""
    contract = "type Query { a: Int, b: String }"
    assert breaking_changes(contract, "type Query { a: Int }") == [
        "FIELD_REMOVED: Field Query.b was removed."
    ]
