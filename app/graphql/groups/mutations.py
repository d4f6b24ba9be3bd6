"""Creating, filling, linking and deleting configuration groups."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.graphql.configuration import config_entries
from app.graphql.context import Info
from app.graphql.deployments import LazyDeployment
from app.graphql.deployments import types as deployment_types
from app.graphql.errors import (
    ConflictError,
    DeleteResult,
    ForbiddenError,
    MissingConfigurationError,
    NotFoundError,
    PromotionBlockedError,
    ValidationError,
    in_change_transaction,
    in_transaction,
)
from app.graphql.groups.types import (
    ConfigurationGroup,
    CreateConfigurationGroupInput,
    LinkConfigurationGroupInput,
    SetConfigurationGroupValuesInput,
)
from app.graphql.objects import Deleted
from app.graphql.promotions import LazyPromotion
from app.graphql.promotions import types as promotion_types
from app.services import configuration_groups
from app.services.configuration_groups import GroupKey

ConfigurationGroupResult = Annotated[
    ConfigurationGroup | ValidationError | NotFoundError | ForbiddenError | ConflictError,
    strawberry.union("ConfigurationGroupResult"),
]


@strawberry.type(description="The group with its new values, and what restarting did.")
class ConfigurationGroupValuesSet:
    group: ConfigurationGroup
    restarted: list[LazyDeployment] = strawberry.field(
        description="The deployments queued for a restart with the new values."
    )
    requests: list[LazyPromotion] = strawberry.field(
        description="The requests filed instead, in environments an approval policy protects."
    )


SetConfigurationGroupValuesResult = Annotated[
    ConfigurationGroupValuesSet
    | ValidationError
    | NotFoundError
    | ForbiddenError
    | ConflictError
    | MissingConfigurationError
    | PromotionBlockedError,
    strawberry.union("SetConfigurationGroupValuesResult"),
]


@strawberry.type
class ConfigurationGroupMutations:
    @strawberry.mutation(description="ADMIN only.")
    @in_transaction
    async def create_configuration_group(
        self, info: Info, input: CreateConfigurationGroupInput
    ) -> ConfigurationGroupResult:
        ctx = info.context
        group = await configuration_groups.create_group(
            ctx.session,
            actor=ctx.viewer,
            organization_id=input.organization_id,
            name=input.name,
            keys=[GroupKey(key=k.key, secret=k.secret) for k in input.keys],
            description=input.description,
            editor_role=input.editor_role,
        )
        return ConfigurationGroup.from_model(group)

    @strawberry.mutation(
        description="ADMIN only. Its values and links go with it: the linked deployments are "
        "marked restartRequired."
    )
    @in_transaction
    async def delete_configuration_group(self, info: Info, id: strawberry.ID) -> DeleteResult:
        ctx = info.context
        await configuration_groups.delete_group(ctx.session, actor=ctx.viewer, group_id=id)
        return Deleted(id=id)

    @strawberry.mutation(
        description="ADMINs and the group's editor role. Sets (or, with a null value, "
        "removes) values of one environment; every linked deployment there is marked "
        "restartRequired, and with restart the running ones are restarted."
    )
    @in_change_transaction
    async def set_configuration_group_values(
        self, info: Info, input: SetConfigurationGroupValuesInput
    ) -> SetConfigurationGroupValuesResult:
        ctx = info.context
        done = await configuration_groups.set_group_values(
            ctx.session,
            actor=ctx.viewer,
            box=ctx.box,
            group_id=input.group_id,
            environment_id=input.environment_id,
            entries=config_entries(input.entries),
            restart=input.restart,
        )
        return ConfigurationGroupValuesSet(
            group=ConfigurationGroup.from_model(done.group),
            restarted=[deployment_types.Deployment.from_model(d) for d in done.restarted],
            requests=[promotion_types.Promotion.from_model(p) for p in done.requests],
        )

    @strawberry.mutation(
        description="ADMINs and the group's editor role. The integration's deployments run "
        "the group's values under their own (marked restartRequired)."
    )
    @in_transaction
    async def link_configuration_group(
        self, info: Info, input: LinkConfigurationGroupInput
    ) -> ConfigurationGroupResult:
        ctx = info.context
        await configuration_groups.link_group(
            ctx.session,
            actor=ctx.viewer,
            group_id=input.group_id,
            integration_id=input.integration_id,
            mode=input.mode,
        )
        group = await ctx.loaders.require(ctx.loaders.configuration_group, input.group_id)
        return ConfigurationGroup.from_model(group)

    @strawberry.mutation(description="ADMINs and the group's editor role.")
    @in_transaction
    async def unlink_configuration_group(
        self, info: Info, group_id: strawberry.ID, integration_id: strawberry.ID
    ) -> ConfigurationGroupResult:
        ctx = info.context
        group = await configuration_groups.unlink_group(
            ctx.session, actor=ctx.viewer, group_id=group_id, integration_id=integration_id
        )
        return ConfigurationGroup.from_model(group)
