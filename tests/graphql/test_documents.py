"""Each query text is parsed and validated once per schema (app/graphql/documents.py): what a
request is refused for, it is refused for every time, and what one schema accepted is checked
again by a schema with other rules."""

from __future__ import annotations

from graphql import parse

from app.graphql.documents import DocumentCache
from app.graphql.schema import MAX_QUERY_DEPTH, build_schema
from tests.graphql.test_api_limits import aliased_mutation, deep_mutation

INTROSPECTION = "{ __schema { queryType { name } } }"


async def test_a_document_refused_once_is_refused_every_time() -> None:
    schema = build_schema()
    for document, word in (
        (deep_mutation("too-deep", MAX_QUERY_DEPTH + 1), "depth"),
        (aliased_mutation(31), "aliases"),
        ("{ nosuchfield }", "nosuchfield"),
    ):
        for _ in range(3):
            result = await schema.execute(document)
            assert result.data is None
            assert result.errors is not None and len(result.errors) == 1
            assert word in result.errors[0].message


async def test_a_document_that_does_not_parse_is_refused_every_time() -> None:
    schema = build_schema()
    for _ in range(3):
        result = await schema.execute("{ viewer {")
        assert result.errors is not None
        assert "Syntax Error" in result.errors[0].message


async def test_a_schema_without_introspection_refuses_what_the_other_accepted() -> None:
    open_schema, closed_schema = build_schema(), build_schema(introspection=False)
    for _ in range(2):
        accepted = await open_schema.execute(INTROSPECTION)
        assert accepted.errors is None
        assert accepted.data == {"__schema": {"queryType": {"name": "Query"}}}
        refused = await closed_schema.execute(INTROSPECTION)
        assert refused.data is None and refused.errors


async def test_valid_documents_are_answered_again_from_the_cache() -> None:
    schema = build_schema()
    for _ in range(3):
        result = await schema.execute("{ __typename }")
        assert result.errors is None
        assert result.data == {"__typename": "Query"}


def test_the_cache_keeps_a_bounded_number_of_short_documents() -> None:
    cache = DocumentCache(max_entries=2, max_query_chars=40)
    for query in ("{ a }", "{ b }", "{ c }"):
        cache.put(query, parse(query))
    assert len(cache) == 2
    assert cache.get("{ a }") is None  # the least recently used went
    assert cache.get("{ c }") is not None

    long_query = "{ " + " ".join(f"f{i}" for i in range(20)) + " }"
    cache.put(long_query, parse(long_query))
    assert cache.get(long_query) is None
    assert cache.get(None) is None
