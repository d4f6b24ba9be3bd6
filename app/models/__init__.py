"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from app.models.configuration_groups import (
    ConfigurationGroup,
    ConfigurationGroupLink,
    ConfigurationGroupValue,
    GroupLinkMode,
)
from app.models.deployments import ConfigValue, Deployment, DeploymentStatus
from app.models.environments import DataPlane, Environment, RuntimeKind
from app.models.governance import ApprovalPolicy, AuditEvent, Review, ReviewDecision
from app.models.identity import ApiToken, Membership, Organization, Role, User
from app.models.pipelines import Pipeline, PipelineStage
from app.models.projects import Build, Integration, Project
from app.models.promotions import (
    ChangeKind,
    ChangeStatus,
    DeploymentChange,
    DeploymentRevision,
    OutboxMessage,
    Promotion,
    PromotionEvent,
    PromotionStatus,
    RequestKind,
    RevisionCause,
    VerificationRun,
)
from app.models.releases import IntegrationDependency, Release, ReleaseEvent, ReleaseStatus

__all__ = [
    "ApiToken",
    "ApprovalPolicy",
    "AuditEvent",
    "Build",
    "ChangeKind",
    "ChangeStatus",
    "ConfigValue",
    "ConfigurationGroup",
    "ConfigurationGroupLink",
    "ConfigurationGroupValue",
    "DataPlane",
    "Deployment",
    "DeploymentChange",
    "DeploymentRevision",
    "DeploymentStatus",
    "Environment",
    "GroupLinkMode",
    "Integration",
    "IntegrationDependency",
    "Membership",
    "Organization",
    "OutboxMessage",
    "Pipeline",
    "PipelineStage",
    "Project",
    "Promotion",
    "PromotionEvent",
    "PromotionStatus",
    "Release",
    "ReleaseEvent",
    "ReleaseStatus",
    "RequestKind",
    "Review",
    "ReviewDecision",
    "RevisionCause",
    "Role",
    "RuntimeKind",
    "User",
    "VerificationRun",
]
