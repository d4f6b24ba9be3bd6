"""Deployments: what runs in one environment:
the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.deployments.types import ConfigValue, Deployment

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyConfigValue = Annotated["ConfigValue", strawberry.lazy("app.graphql.deployments.types")]
LazyDeployment = Annotated["Deployment", strawberry.lazy("app.graphql.deployments.types")]
