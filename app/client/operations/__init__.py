"""The GraphQL operations of the CLI: the ``.graphql`` files beside this module (package data),
one per domain, read once.

A request carries its operation and the fragments it uses (from any of the files), nothing
else. tests/client/test_operations.py validates every file against schema.graphql, so an
operation that drifts from the API fails the tests, not a user's command.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib.resources import files

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    parse,
)


def sources() -> dict[str, str]:
    """The text of each operation file, by file name."""
    folder = files(__package__)
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if entry.name.endswith(".graphql")
    }


@cache
def definitions() -> tuple[dict[str, OperationDefinitionNode], dict[str, FragmentDefinitionNode]]:
    """Every operation and fragment of the files, by name (each name once)."""
    operations: dict[str, OperationDefinitionNode] = {}
    fragments: dict[str, FragmentDefinitionNode] = {}
    for file_name, text in sources().items():
        for definition in parse(text).definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                name = definition.name.value
                if name in operations:
                    raise ValueError(f"{file_name}: operation {name} is defined twice")
                operations[name] = definition
            elif isinstance(definition, FragmentDefinitionNode):
                name = definition.name.value
                if name in fragments:
                    raise ValueError(f"{file_name}: fragment {name} is defined twice")
                fragments[name] = definition
            else:
                raise ValueError(f"{file_name}: every definition is a named operation or fragment")
    return operations, fragments


@cache
def document(name: str) -> DocumentNode:
    """The operation ``name`` with the fragments it uses."""
    operations, fragments = definitions()
    operation = operations[name]
    used: dict[str, FragmentDefinitionNode] = {}
    pending = list(_spreads(operation.selection_set))
    while pending:
        fragment = pending.pop()
        if fragment not in used:
            used[fragment] = fragments[fragment]
            pending.extend(_spreads(used[fragment].selection_set))
    return DocumentNode(definitions=(operation, *(used[key] for key in sorted(used))))


def _spreads(selection_set: SelectionSetNode | None) -> Iterator[str]:
    """The names of the fragments spread in a selection set, at any depth."""
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FragmentSpreadNode):
            yield selection.name.value
        elif isinstance(selection, FieldNode | InlineFragmentNode):
            yield from _spreads(selection.selection_set)
