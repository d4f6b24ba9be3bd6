"""Releases and integration dependencies: the object and input types, the queries and the
mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.releases.types import Release

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyRelease = Annotated["Release", strawberry.lazy("app.graphql.releases.types")]
