"""``promenade env list``: the environments of an organization, in pipeline order."""

from __future__ import annotations

from app.client.commands.context import Command
from app.client.commands.names import organization_slug
from app.client.commands.output import Cell
from app.client.errors import NotFound


async def env_list(command: Command) -> int:
    slug = await organization_slug(command)
    organization = await command.api.organization_environments(slug)
    if organization is None:
        raise NotFound(f"no organization {slug!r}")
    environments = organization["environments"]
    if command.out.json_mode:
        command.out.json(
            {
                "organization": {
                    "id": organization["id"],
                    "slug": organization["slug"],
                    "name": organization["name"],
                },
                "environments": environments,
            }
        )
        return 0
    rows: list[list[Cell]] = []
    for environment in environments:
        plane = environment["dataPlane"]
        frozen: Cell = "no"
        if environment["frozen"]:
            reason = environment["freezeReason"]
            frozen = (f"yes: {reason}" if reason else "yes", "bold cyan")
        rows.append(
            [
                str(environment["position"]),
                (environment["name"], "bold"),
                environment["dnsPrefix"],
                ("yes", "bold red") if environment["critical"] else "no",
                f"{plane['name']} ({plane['runtime']})",
                frozen,
            ]
        )
    command.out.table(
        ["#", "NAME", "DNS PREFIX", "CRITICAL", "DATA PLANE", "FROZEN"],
        rows,
        title=f"Environments of {organization['name']} ({organization['slug']})",
    )
    return 0
