"""The domain's enums, registered with strawberry under the contract's names: the models and
services define each one once, and the schema shows it as it is."""

from __future__ import annotations

import strawberry

from app.models import (
    DeploymentStatus,
    PromotionStatus,
    RequestKind,
    ReviewDecision,
    RevisionCause,
    Role,
    RuntimeKind,
)
from app.services.configuration import ConfigChangeKind, ConfigType
from app.services.drift import DriftKind
from app.services.errors import Blocker

for _enum in (
    Role,
    RuntimeKind,
    DeploymentStatus,
    ConfigType,
    PromotionStatus,
    RevisionCause,
    ReviewDecision,
    ConfigChangeKind,
):
    strawberry.enum(_enum)

strawberry.enum(
    RequestKind,
    description="What a request asks for: a promotion, or (in an environment with an approval "
    "policy) a deploy, a configuration change, a restart that applies new values, a rollback.",
)

strawberry.enum(
    DriftKind,
    description="How a configuration key differs between two environments (compare). A secret "
    "set in both is SECRET_NOT_COMPARED: comparing it would tell whoever set one side "
    "whether they guessed the other.",
)

# The services' reasons, under the contract's name.
strawberry.enum(Blocker, name="PromotionBlocker")
