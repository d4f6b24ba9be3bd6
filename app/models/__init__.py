"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from app.models.deployments import ConfigValue, Deployment, DeploymentStatus
from app.models.environments import DataPlane, Environment, RuntimeKind
from app.models.identity import ApiToken, Membership, Organization, Role, User
from app.models.pipelines import Pipeline, PipelineStage
from app.models.projects import Build, Integration, Project

__all__ = [
    "ApiToken",
    "Build",
    "ConfigValue",
    "DataPlane",
    "Deployment",
    "DeploymentStatus",
    "Environment",
    "Integration",
    "Membership",
    "Organization",
    "Pipeline",
    "PipelineStage",
    "Project",
    "Role",
    "RuntimeKind",
    "User",
]
