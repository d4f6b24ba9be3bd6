"""Deployment pipelines: the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.pipelines.types import DeploymentPipeline

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyDeploymentPipeline = Annotated[
    "DeploymentPipeline", strawberry.lazy("app.graphql.pipelines.types")
]
