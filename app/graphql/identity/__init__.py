"""Users, the viewer and API tokens: the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.identity.types import User

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyUser = Annotated["User", strawberry.lazy("app.graphql.identity.types")]
