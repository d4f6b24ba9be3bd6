"""Organizations and their members: the object and input types, the queries and the mutations."""

from typing import TYPE_CHECKING, Annotated

import strawberry

if TYPE_CHECKING:
    from app.graphql.organizations.types import Organization, OrganizationMembership

# The domain's object types as the other domains' annotations name them: resolved when the
# schema is built, so that the domains' type modules may refer to each other.
LazyOrganization = Annotated["Organization", strawberry.lazy("app.graphql.organizations.types")]
LazyOrganizationMembership = Annotated[
    "OrganizationMembership", strawberry.lazy("app.graphql.organizations.types")
]
