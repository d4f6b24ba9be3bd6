"""Projects, integrations and builds: the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.projects.types import Build, Integration, Project

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyBuild = Annotated["Build", strawberry.lazy("app.graphql.projects.types")]
LazyIntegration = Annotated["Integration", strawberry.lazy("app.graphql.projects.types")]
LazyProject = Annotated["Project", strawberry.lazy("app.graphql.projects.types")]
