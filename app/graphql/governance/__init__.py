"""Approval policies and their rules, freezes and the audit log:
the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.governance.rules import ApprovalRule, ApprovalRuleProgress
    from app.graphql.governance.types import AuditEvent

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyAuditEvent = Annotated["AuditEvent", strawberry.lazy("app.graphql.governance.types")]
LazyApprovalRule = Annotated["ApprovalRule", strawberry.lazy("app.graphql.governance.rules")]
LazyApprovalRuleProgress = Annotated[
    "ApprovalRuleProgress", strawberry.lazy("app.graphql.governance.rules")
]
