"""The committed schema.graphql is the schema the code serves, byte for byte."""

from __future__ import annotations

from pathlib import Path

from app.graphql.schema import schema

SCHEMA_FILE = Path(__file__).parents[1] / "schema.graphql"


def test_committed_schema_matches_the_code() -> None:
    # `strawberry export-schema` (what `make schema` runs) writes as_str() and a newline.
    exported = schema.as_str() + "\n"
    assert SCHEMA_FILE.exists(), f"{SCHEMA_FILE} is missing: run `make schema` and commit it"
    committed = SCHEMA_FILE.read_text()
    assert committed == exported, (
        "schema.graphql differs from the schema the code serves: "
        "run `make schema` and commit the result"
    )
