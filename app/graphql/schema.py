"""The schema, composed from the per-domain pieces."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from app.graphql import enums  # noqa: F401  (registers the domain's enums)
from app.graphql.deployments.mutations import DeploymentMutations
from app.graphql.deployments.queries import DeploymentQueries
from app.graphql.deployments.types import Deployment
from app.graphql.deployments.verification import VerificationMutations
from app.graphql.documents import CachedDocuments, DocumentCache
from app.graphql.environments.mutations import EnvironmentMutations
from app.graphql.environments.queries import EnvironmentQueries
from app.graphql.environments.types import DataPlane, Environment
from app.graphql.governance.mutations import GovernanceMutations
from app.graphql.groups.mutations import ConfigurationGroupMutations
from app.graphql.identity.mutations import IdentityMutations
from app.graphql.identity.queries import IdentityQueries
from app.graphql.identity.types import ApiToken, User
from app.graphql.metrics import RequestMetrics
from app.graphql.nodes import NodeQueries
from app.graphql.organizations.mutations import OrganizationMutations
from app.graphql.organizations.queries import OrganizationQueries
from app.graphql.organizations.types import Organization
from app.graphql.pipelines.mutations import PipelineMutations
from app.graphql.pipelines.types import DeploymentPipeline
from app.graphql.projects.drift import DriftQueries
from app.graphql.projects.mutations import ProjectMutations
from app.graphql.projects.queries import ProjectQueries
from app.graphql.projects.types import Build, Integration, Project
from app.graphql.promotions.mutations import PromotionMutations
from app.graphql.promotions.queries import PromotionQueries
from app.graphql.public_error import PublicError
from app.graphql.releases.mutations import ReleaseMutations
from app.graphql.releases.queries import ReleaseQueries
from app.graphql.subscriptions import Subscription

log = logging.getLogger(__name__)

# Limits on what one request may ask for (the README lists them).
MAX_QUERY_DEPTH = 12
MAX_ALIASES = 30
MAX_TOKENS = 3000

# What ``execute`` runs: subscriptions go through ``subscribe``, on a websocket.
EXECUTED = frozenset({OperationType.QUERY, OperationType.MUTATION})


@strawberry.type
class Query(
    IdentityQueries,
    OrganizationQueries,
    NodeQueries,
    EnvironmentQueries,
    ProjectQueries,
    DriftQueries,
    DeploymentQueries,
    PromotionQueries,
    ReleaseQueries,
):
    pass


@strawberry.type
class Mutation(
    OrganizationMutations,
    IdentityMutations,
    EnvironmentMutations,
    PipelineMutations,
    ProjectMutations,
    DeploymentMutations,
    VerificationMutations,
    PromotionMutations,
    GovernanceMutations,
    ConfigurationGroupMutations,
    ReleaseMutations,
):
    pass


def _should_mask(error: GraphQLError) -> bool:
    """Mask what went wrong inside a resolver, unless it was meant for the client. Errors of
    parsing and validation (no original error) say what is wrong with the query: keep them."""
    original = error.original_error
    return original is not None and not isinstance(original, PublicError | GraphQLError)


class PromenadeSchema(strawberry.Schema):
    """Logs what went wrong on the server, and only that. Errors of the request itself (a bad
    query, a variable of the wrong shape, a refused limit) are the client's to read, in the
    response: graphql-core quotes the offending variable values and query lines in them, and a
    request may carry secret values, so they never reach the server's log.

    A subscription is served over a websocket only (``subscribe``): ``execute`` runs queries
    and mutations, so a subscription sent over HTTP is refused with a 400 rather than run
    without an end and without the websocket's checks of its token."""

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        allowed = set(allowed_operation_types or EXECUTED) & EXECUTED
        return await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed,
            operation_extensions=operation_extensions,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if _should_mask(error):
                original = error.original_error
                assert original is not None
                log.error(
                    "unexpected error in %s",
                    ".".join(map(str, error.path or [])) or "the request",
                    exc_info=(type(original), original, original.__traceback__),
                )


# graphql-core's hints at names the schema has: of fields, arguments, types, enum values.
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class HideSuggestions(MaskErrors):
    """Errors without their "Did you mean ...?" hints, which name what the schema has to a
    client that may not introspect it (``disable_field_suggestions`` covers fields only)."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: "Did you mean" in error.message)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            message=_SUGGESTION.sub("", error.message),
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=error.original_error,
            extensions=error.extensions,
        )


def build_schema(*, introspection: bool = True) -> PromenadeSchema:
    """The schema; without ``introspection`` (production, by default), clients can neither
    introspect it nor learn field names from "Did you mean" suggestions."""
    documents = DocumentCache()
    extensions: list[Any] = [
        # First: its measure spans what the others do.
        RequestMetrics,
        lambda: CachedDocuments(documents),
        lambda: QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaskErrors(should_mask_error=_should_mask),
    ]
    if not introspection:
        extensions += [DisableIntrospection, HideSuggestions]
    return PromenadeSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[
            User,
            ApiToken,
            Organization,
            DataPlane,
            Environment,
            DeploymentPipeline,
            Project,
            Integration,
            Build,
            Deployment,
        ],
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not introspection),
    )


# The schema with introspection (what `make schema` exports, and the default).
schema = build_schema()
