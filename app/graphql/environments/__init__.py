"""Environments, their data planes and approval policies:
the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.environments.types import DataPlane, Environment

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyDataPlane = Annotated["DataPlane", strawberry.lazy("app.graphql.environments.types")]
LazyEnvironment = Annotated["Environment", strawberry.lazy("app.graphql.environments.types")]
