"""The exported schema keeps the API contract: no type, field, argument or enum value of the
contract is missing or changed incompatibly (the schema may add to it)."""

from __future__ import annotations

from pathlib import Path

from graphql import build_schema, find_breaking_changes

ROOT = Path(__file__).parents[1]
SCHEMA_FILE = ROOT / "schema.graphql"
# The contract, as this repository last took it from the design (`make contract` copies it),
# so that a clone checks it with nothing beside it.
CONTRACT_FILE = ROOT / "tests" / "contract" / "api-contract.graphql"
# The design's own copy, where the shared/ folder lies beside the repository (CI, the team's
# work trees): the repository's copy must be the same.
DESIGN_CONTRACT = ROOT.parent / "shared" / "design" / "api-contract.graphql"


def breaking_changes(contract_sdl: str, schema_sdl: str) -> list[str]:
    changes = find_breaking_changes(build_schema(contract_sdl), build_schema(schema_sdl))
    return sorted(f"{change.type.name}: {change.description}" for change in changes)


def test_schema_keeps_the_contract() -> None:
    if DESIGN_CONTRACT.exists():
        assert CONTRACT_FILE.read_text() == DESIGN_CONTRACT.read_text(), (
            f"{CONTRACT_FILE} is not the design's contract: run `make contract`"
        )
    broken = breaking_changes(CONTRACT_FILE.read_text(), SCHEMA_FILE.read_text())
    assert not broken, "the schema breaks the contract:\n" + "\n".join(broken)


def test_the_check_finds_a_removed_field() -> None:
    """The check itself: a schema without a contract field is reported."""
    contract = "type Query { a: Int, b: String }"
    assert breaking_changes(contract, "type Query { a: Int }") == [
        "FIELD_REMOVED: Field Query.b was removed."
    ]
