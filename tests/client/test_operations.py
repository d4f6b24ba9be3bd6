"""The CLI's operations (app/client/operations/*.graphql) against the exported schema
(schema.graphql): each one valid, and each typed result (the TypedDicts of app/client/api/)
the shape of the selection it is read from, field by field, nullability and lists included.

An operation or a TypedDict that drifts from the API fails here, not in a user's command.
"""

from __future__ import annotations

import inspect
import types
from pathlib import Path
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    InlineFragmentNode,
    SelectionSetNode,
    build_schema,
    parse,
    validate,
)
from graphql.pyutils import Undefined

import app.client.api as api
from app.client.api import deployments, drift, environments, integrations, promotions
from app.client.operations import definitions, document, sources

SCHEMA = build_schema((Path(__file__).resolve().parents[2] / "schema.graphql").read_text())
SCALARS: dict[str, type] = {
    "String": str,
    "ID": str,
    "DateTime": str,
    "Int": int,
    "Boolean": bool,
}
Parent = GraphQLObjectType | GraphQLInterfaceType

# Where each typed result is read from: a fragment, or an operation and the response keys
# down to the selection (lists walked through).
RESULTS: dict[type, str | tuple[str, tuple[str, ...]]] = {
    api.Environment: "EnvironmentFields",
    api.Deployment: "DeploymentFields",
    api.Promotion: "PromotionFields",
    api.Organization: ("ViewerOrganizations", ("viewer", "memberships", "organization")),
    api.OrganizationEnvironments: ("OrganizationEnvironments", ("organization",)),
    api.Integration: ("Integration", ("integration",)),
    api.BuildRef: ("Builds", ("integration", "builds", "edges", "node")),
    api.PromotionPlan: ("PromotionPlan", ("promotionPlan",)),
    api.EnvironmentComparison: "ComparisonFields",
    api.PromotionEvent: ("PromotionStatus", ("promotionStatus",)),
    api.DeploymentEvent: ("DeploymentEvents", ("deploymentEvents",)),
}
INPUTS: dict[type, str] = {
    api.PromoteInput: "PromoteInput",
    api.EmergencyInput: "EmergencyInput",
    api.DeployInput: "DeployInput",
    api.RollbackInput: "RollbackInput",
    api.ConfigEntry: "ConfigEntryInput",
}


def test_every_operation_file_is_valid_against_the_schema() -> None:
    # All files as one document: fragments are shared between files, and an unused one fails
    # too (NoUnusedFragments).
    combined = DocumentNode(
        definitions=tuple(
            definition for text in sources().values() for definition in parse(text).definitions
        )
    )
    assert sources(), "no operation files found"
    assert [str(error) for error in validate(SCHEMA, combined)] == []


@pytest.mark.parametrize("name", sorted(definitions()[0]))
def test_each_request_carries_its_operation_and_the_fragments_it_uses(name: str) -> None:
    # What is sent: valid on its own (every fragment it spreads, and none it does not).
    assert [str(error) for error in validate(SCHEMA, document(name))] == []


def test_every_operation_the_api_names_exists() -> None:
    operations = set(definitions()[0])
    named = set()
    for module in (environments, integrations, deployments, promotions, drift):
        source = inspect.getsource(module)
        named |= {name for name in operations if f'"{name}"' in source}
    assert named == operations


def _named(kind: Any) -> Any:
    while isinstance(kind, GraphQLNonNull | GraphQLList):
        kind = kind.of_type
    return kind


def _selected(
    selection_set: SelectionSetNode, parent: Parent
) -> dict[str, tuple[Any, SelectionSetNode | None]]:
    """The response keys of a selection set (fragments spread), each with its field's type."""
    fragments: dict[str, FragmentDefinitionNode] = definitions()[1]
    keys: dict[str, tuple[Any, SelectionSetNode | None]] = {}
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.name.value != "__typename":
                field = parent.fields[selection.name.value]
                key = (selection.alias or selection.name).value
                keys[key] = (field.type, selection.selection_set)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments[selection.name.value]
            on = SCHEMA.get_type(fragment.type_condition.name.value)
            assert isinstance(on, GraphQLObjectType | GraphQLInterfaceType)
            keys.update(_selected(fragment.selection_set, on))
        elif isinstance(selection, InlineFragmentNode):
            on = (
                SCHEMA.get_type(selection.type_condition.name.value)
                if selection.type_condition
                else parent
            )
            if on is parent:
                keys.update(_selected(selection.selection_set, parent))
    return keys


def _selection(where: str | tuple[str, tuple[str, ...]]) -> tuple[Parent, SelectionSetNode]:
    operations, fragments = definitions()
    if isinstance(where, str):
        fragment = fragments[where]
        on = SCHEMA.get_type(fragment.type_condition.name.value)
        assert isinstance(on, GraphQLObjectType | GraphQLInterfaceType)
        return on, fragment.selection_set
    name, path = where
    operation = operations[name]
    root = SCHEMA.get_root_type(operation.operation)
    assert root is not None
    parent: Parent = root
    selection_set = operation.selection_set
    for key in path:
        field_type, inner = _selected(selection_set, parent)[key]
        assert inner is not None, f"{name}: {key} has no selection"
        parent, selection_set = _named(field_type), inner
    return parent, selection_set


def _check_type(annotation: Any, kind: Any, where: str, *, sent: bool = False) -> Any:
    """``annotation`` is the Python type of values of GraphQL type ``kind``; the TypedDict
    that is the named type's selection, if any. A value ``sent`` (an input) may leave out
    the null that the schema allows."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else ()
    nullable = not isinstance(kind, GraphQLNonNull)
    if sent:
        assert nullable or type(None) not in options, f"{where}: not nullable"
    else:
        assert (type(None) in options) == nullable, f"{where}: nullable is {nullable}"
    if options:
        (annotation,) = [option for option in options if option is not type(None)]
    kind = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
    if isinstance(kind, GraphQLList):
        assert get_origin(annotation) is list, f"{where}: a list"
        (item,) = get_args(annotation)
        return _check_type(item, kind.of_type, f"{where}[]", sent=sent)
    if isinstance(kind, GraphQLScalarType):
        assert annotation is SCALARS[kind.name], f"{where}: {kind.name}"
    elif isinstance(kind, GraphQLEnumType):
        assert annotation is str, f"{where}: the enum {kind.name}, as its name"
    else:
        assert is_typeddict(annotation), f"{where}: a TypedDict of the selection"
    return annotation


def _required(shape: type) -> set[str]:
    """The keys a TypedDict requires (``__required_keys__`` cannot tell under postponed
    annotations before Python 3.12: every key looks required)."""
    hints = get_type_hints(shape, include_extras=True)
    return {key for key, hint in hints.items() if get_origin(hint) is not NotRequired}


def _check(shape: type, parent: Parent, selection_set: SelectionSetNode, seen: set[type]) -> None:
    seen.add(shape)
    hints = get_type_hints(shape)
    keys = _selected(selection_set, parent)
    required = _required(shape)
    name = shape.__name__
    assert required <= keys.keys(), f"{name}: not selected: {sorted(required - keys.keys())}"
    assert keys.keys() <= hints.keys(), f"{name}: not typed: {sorted(keys.keys() - hints.keys())}"
    for key, (field_type, inner) in keys.items():
        typed = _check_type(hints[key], field_type, f"{name}.{key}")
        if inner is not None:
            _check(typed, _named(field_type), inner, seen)


def test_the_typed_results_are_the_shapes_of_their_selections() -> None:
    seen: set[type] = set()
    for shape, where in RESULTS.items():
        parent, selection_set = _selection(where)
        _check(shape, parent, selection_set, seen)
    # Every result type of the API is checked (directly or inside another).
    declared = {
        value
        for module in (environments, integrations, deployments, promotions, drift)
        for value in vars(module).values()
        if is_typeddict(value) and value.__module__ == module.__name__
    }
    assert declared - set(INPUTS) == seen


@pytest.mark.parametrize("shape", list(INPUTS), ids=lambda shape: shape.__name__)
def test_the_typed_inputs_are_the_schemas_inputs(shape: type) -> None:
    kind = SCHEMA.get_type(INPUTS[shape])
    assert isinstance(kind, GraphQLInputObjectType)
    hints = get_type_hints(shape)
    assert hints.keys() <= kind.fields.keys()
    # What the schema requires: non-null and without a default.
    must = {
        name
        for name, field in kind.fields.items()
        if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
    }
    assert must <= _required(shape)
    for key, annotation in hints.items():
        _check_type(annotation, kind.fields[key].type, f"{shape.__name__}.{key}", sent=True)
