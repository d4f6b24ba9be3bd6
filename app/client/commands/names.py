"""Names on the command line resolved through the API: the organization (``--org`` or the
viewer's only one), an integration (an id or PROJECT/INTEGRATION slugs), an environment (an
id or a name in any case)."""

from __future__ import annotations

from app.client.api import Environment, Integration, OrganizationEnvironments
from app.client.commands.context import Command
from app.client.errors import ClientError, NotFound, usage


async def organization_slug(command: Command) -> str:
    """``--org``, or the viewer's only organization."""
    slugs = [organization["slug"] for organization in await command.api.organizations()]
    wanted: str | None = command.args.org
    if wanted:
        if wanted not in slugs:
            raise NotFound(f"no organization {wanted!r} among yours ({', '.join(slugs) or 'none'})")
        return wanted
    if len(slugs) == 1:
        return slugs[0]
    if not slugs:
        raise ClientError("your user belongs to no organization")
    raise usage(f"you belong to several organizations ({', '.join(slugs)}): pass --org")


async def resolve_integration(command: Command, reference: str) -> Integration:
    """An integration by id, or by ``project-slug/integration-slug`` in the organization."""
    if "/" in reference:
        project_slug, _, integration_slug = reference.partition("/")
        if not project_slug or not integration_slug or "/" in integration_slug:
            raise usage(f"INTEGRATION is an id or PROJECT/INTEGRATION (slugs), not {reference!r}")
        organization = await organization_slug(command)
        project_id = await command.api.find_project(organization, project_slug)
        if project_id is None:
            raise NotFound(f"no project {project_slug!r} in organization {organization!r}")
        integration_id = await command.api.find_integration(project_id, integration_slug)
        if integration_id is None:
            raise NotFound(f"no integration {integration_slug!r} in project {project_slug!r}")
    else:
        integration_id = reference
    integration = await command.api.integration(integration_id)
    if integration is None:
        raise NotFound(f"no integration {reference!r} (give its id or PROJECT/INTEGRATION slugs)")
    return integration


def resolve_environment(integration: Integration, reference: str, option: str) -> Environment:
    """An environment of the integration's organization, by id or name (any case)."""
    return organization_environment(integration["project"]["organization"], reference, option)


def organization_environment(
    organization: OrganizationEnvironments, reference: str, option: str
) -> Environment:
    """An environment of the organization, by id or name (any case)."""
    environments = organization["environments"]
    for environment in environments:
        if environment["id"] == reference:
            return environment
    for environment in environments:
        if environment["name"].casefold() == reference.casefold():
            return environment
    names = ", ".join(environment["name"] for environment in environments)
    raise NotFound(
        f"{option}: no environment {reference!r} in organization {organization['slug']!r} "
        f"(its environments: {names})"
    )


def first_environment(integration: Integration) -> Environment:
    stages = integration["project"]["pipeline"]["environments"]
    if not stages:
        raise ClientError(f"the pipeline of project {integration['project']['slug']!r} is empty")
    return resolve_environment(integration, stages[0]["id"], "--env")


def integration_label(integration: Integration) -> str:
    return f"{integration['project']['slug']}/{integration['slug']}"
