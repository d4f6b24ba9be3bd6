"""Which subscriptions sockets may share (app/graphql/broadcasts.py): only a root field whose
answer is the document's, the variables' and the roles', and only documents the schema could
take; and the frames they get."""

from __future__ import annotations

import json

import pytest

from app.graphql.broadcasts import COMPLETE, Frame, Question, shared_field
from app.models import Role

EVENTS = "subscription { deploymentEvents { status } }"


@pytest.mark.parametrize(
    ("query", "operation_name", "shared"),
    [
        (EVENTS, None, "deploymentEvents"),
        ("subscription { live: deploymentEvents(environmentId: $e) { status } }", None, "live"),
        ('subscription { promotionStatus(id: "p") { status } }', None, None),
        ("query { viewer { user { id } } }", None, None),
        ("subscription { deploymentEvents @include(if: $on) { status } }", None, None),
        ("subscription A { promotionStatus(id: 1) { status } } " + EVENTS, None, None),
        (
            'subscription A { promotionStatus(id: "p") { status } } subscription B '
            "{ deploymentEvents { status } }",
            "B",
            "deploymentEvents",
        ),
        ("subscription {", None, None),
        ("{" * 5000, None, None),
        ("subscription { " + "a: deploymentEvents { status } " * 2000 + "}", None, None),
    ],
    ids=[
        "deploymentEvents",
        "aliased",
        "promotionStatus",
        "a query",
        "a directive",
        "two operations, none named",
        "the named one",
        "no document",
        "too deep",
        "too many tokens",
    ],
)
def test_only_what_reads_the_same_for_the_same_roles_is_shared(
    query: str, operation_name: str | None, shared: str | None
) -> None:
    assert shared_field(query, operation_name) == shared


def test_the_question_is_the_same_whatever_the_order_of_variables_and_roles() -> None:
    one = Question.of(EVENTS, {"a": 1, "b": 2}, None, {"o1": Role.ADMIN, "o2": Role.VIEWER})
    two = Question.of(EVENTS, {"b": 2, "a": 1}, None, {"o2": Role.VIEWER, "o1": Role.ADMIN})
    assert one == two
    assert one != Question.of(EVENTS, {"a": 1, "b": 2}, None, {"o1": Role.ADMIN})
    assert one != Question.of(EVENTS, {"a": 1, "b": 2}, None, {"o1": Role.VIEWER})


def test_a_frame_is_addressed_to_each_operation() -> None:
    frame = Frame("next", json.dumps({"data": {"x": 1}}))
    assert json.loads(frame.addressed_to('a"b')) == {
        "id": 'a"b',
        "type": "next",
        "payload": {"data": {"x": 1}},
    }
    assert json.loads(COMPLETE.addressed_to("7")) == {"id": "7", "type": "complete"}
    refusal = json.loads(Frame.refusal("live", "too slow", "TOO_SLOW").addressed_to("1"))
    assert refusal["payload"]["errors"][0]["extensions"] == {"code": "TOO_SLOW"}
