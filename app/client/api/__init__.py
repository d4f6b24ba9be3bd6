"""The operations the CLI needs, typed, one module per domain: each holds the shapes of its
results (``TypedDict``s of the selections in app/client/operations/, so ``--json`` prints them
as the API shaped them; tests/client/test_operations.py checks each against its selection) and
the methods that run them. ``PromenadeAPI`` is all of them on one ``GraphQLClient``.
"""

from __future__ import annotations

from app.client.api.deployments import (
    ConfigEntry,
    DeployInput,
    Deployment,
    DeploymentEvent,
    DeploymentOperations,
    RollbackInput,
)
from app.client.api.drift import (
    ConfigurationDrift,
    DriftOperations,
    EnvironmentComparison,
    IntegrationDrift,
    ProjectRef,
)
from app.client.api.environments import (
    DataPlaneRef,
    Environment,
    EnvironmentOperations,
    EnvironmentRef,
    Organization,
    OrganizationEnvironments,
)
from app.client.api.integrations import (
    BuildRef,
    ConfigKey,
    Integration,
    IntegrationOperations,
    PipelineRef,
    ProjectDetail,
)
from app.client.api.promotions import (
    FINAL_PROMOTION_STATUSES,
    ConfigChange,
    EmergencyInput,
    PromoteInput,
    Promotion,
    PromotionEvent,
    PromotionOperations,
    PromotionPlan,
)
from app.client.transport import GraphQLClient

__all__ = [
    "FINAL_PROMOTION_STATUSES",
    "BuildRef",
    "ConfigChange",
    "ConfigEntry",
    "ConfigKey",
    "ConfigurationDrift",
    "DataPlaneRef",
    "DeployInput",
    "Deployment",
    "DeploymentEvent",
    "EmergencyInput",
    "Environment",
    "EnvironmentComparison",
    "EnvironmentRef",
    "Integration",
    "IntegrationDrift",
    "Organization",
    "OrganizationEnvironments",
    "PipelineRef",
    "ProjectDetail",
    "ProjectRef",
    "PromenadeAPI",
    "PromoteInput",
    "Promotion",
    "PromotionEvent",
    "PromotionPlan",
    "RollbackInput",
]


class PromenadeAPI(
    EnvironmentOperations,
    IntegrationOperations,
    DeploymentOperations,
    PromotionOperations,
    DriftOperations,
):
    """The operations of the CLI, typed."""

    def __init__(self, client: GraphQLClient) -> None:
        self.client = client
