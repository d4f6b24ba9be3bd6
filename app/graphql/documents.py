"""Each distinct query text parsed and validated once per schema.

Clients send the same few operations again and again, and graphql-core's validation of even
``{ __typename }`` costs more than answering it. strawberry's ``ParserCache`` and
``ValidationCache`` would not help here: the validation cache is keyed by the rules, and the
limits (depth, aliases) make new rule classes for every request; and its key hashes the whole
parsed document each time. This cache is keyed by the query text alone, which is sound because
one schema always validates with the same rules: the cache belongs to the schema that
``build_schema`` made (a schema without introspection has its own, so a query the other one
accepted is validated again).

What is kept is bounded: at most ``max_entries`` documents, of query texts no longer than
``max_query_chars`` (a longer text is parsed and validated every time, as without the cache).
A text that does not parse is never kept.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from cachetools import LRUCache
from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension

MAX_ENTRIES = 512
MAX_QUERY_CHARS = 16_384


@dataclass
class Prepared:
    document: DocumentNode
    # None until the document was validated: parsing comes first, and a request can end
    # between the two (an operation type the endpoint refuses).
    errors: tuple[GraphQLError, ...] | None = None


@dataclass
class DocumentCache:
    max_entries: int = MAX_ENTRIES
    max_query_chars: int = MAX_QUERY_CHARS
    _entries: LRUCache[str, Prepared] = field(init=False)
    # LRUCache reorders itself on reads; the API serves from one event loop, but a schema
    # can be used from threads (strawberry's sync execution, tests).
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._entries = LRUCache(maxsize=self.max_entries)

    def get(self, query: str | None) -> Prepared | None:
        if query is None or len(query) > self.max_query_chars:
            return None
        with self._lock:
            return self._entries.get(query)

    def put(self, query: str | None, document: DocumentNode) -> Prepared | None:
        """The entry kept for ``query``; None for a text too long to keep."""
        if query is None or len(query) > self.max_query_chars:
            return None
        prepared = Prepared(document)
        with self._lock:
            self._entries[query] = prepared
        return prepared

    def __len__(self) -> int:
        return len(self._entries)


class CachedDocuments(SchemaExtension):
    """The schema extension that serves parsing and validation from a ``DocumentCache``."""

    def __init__(self, cache: DocumentCache) -> None:
        super().__init__()
        self._cache = cache
        self._prepared: Prepared | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        self._prepared = self._cache.get(context.query)
        if self._prepared is not None:
            context.graphql_document = self._prepared.document
        yield
        if self._prepared is None and context.graphql_document is not None:
            self._prepared = self._cache.put(context.query, context.graphql_document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        prepared = self._prepared
        if prepared is not None and prepared.errors is not None:
            # strawberry validates only while no errors are recorded: a list, even an
            # empty one, stands for the validation's result.
            context.pre_execution_errors = list(prepared.errors)
        yield
        if prepared is not None and prepared.errors is None:
            errors = context.pre_execution_errors
            if errors is not None:
                prepared.errors = tuple(errors)
