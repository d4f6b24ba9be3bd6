"""The viewer: who is asking."""

from __future__ import annotations

import strawberry

from app.graphql.identity.types import Viewer


@strawberry.type
class IdentityQueries:
    @strawberry.field
    def viewer(self) -> Viewer:
        return Viewer()
