"""The caller's own API tokens."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.context import Info
from app.graphql.errors import DeleteResult, ForbiddenError, ValidationError, in_transaction
from app.graphql.identity.types import ApiToken, NewApiToken
from app.graphql.objects import Deleted
from app.services import tokens

ApiTokenResult = Annotated[
    NewApiToken | ValidationError | ForbiddenError, strawberry.union("ApiTokenResult")
]


@strawberry.type
class IdentityMutations:
    @strawberry.mutation(
        description="The token is shown once, in this result; only its hash is stored."
    )
    @in_transaction
    async def create_api_token(self, info: Info, name: str) -> ApiTokenResult:
        ctx = info.context
        token, secret = await tokens.create_api_token(ctx.session, actor=ctx.viewer, name=name)
        return NewApiToken(token=secret, api_token=ApiToken.from_model(token))

    @strawberry.mutation(description="Revokes one of the caller's own tokens.")
    @in_transaction
    async def revoke_api_token(self, info: Info, id: strawberry.ID) -> DeleteResult:
        ctx = info.context
        await tokens.revoke_api_token(ctx.session, actor=ctx.viewer, token_id=id)
        return Deleted(id=id)
