"""Configuration groups: the object and input types and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.groups.types import ConfigurationGroup

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyConfigurationGroup = Annotated[
    "ConfigurationGroup", strawberry.lazy("app.graphql.groups.types")
]
