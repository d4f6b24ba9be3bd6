"""``promenade compare PROJECT --env A --env B``: how two environments of a project's pipeline
differ, integration by integration: the build each runs, and the configuration keys whose
effective values differ. Secrets are never compared (the API returns no secret value): one set
in both reads "not compared"."""

from __future__ import annotations

from app.client.api import ConfigurationDrift, EnvironmentComparison, IntegrationDrift
from app.client.commands.context import Command
from app.client.commands.names import organization_environment, organization_slug
from app.client.commands.output import Cell, first_line, styled
from app.client.errors import NotFound, usage

# What each kind reads as in a table.
KINDS: dict[str, Cell] = {
    "SAME": "same",
    "DIFFERENT": ("different", "yellow"),
    "ONLY_IN_A": ("only in A", "yellow"),
    "ONLY_IN_B": ("only in B", "yellow"),
    "SECRET_NOT_COMPARED": ("secret, not compared", "dim"),
}


async def compare(command: Command) -> int:
    references: list[str] = command.args.env
    if len(references) != 2:
        raise usage("give exactly two environments: --env A --env B")
    slug = await organization_slug(command)
    organization = await command.api.organization_environments(slug)
    if organization is None:
        raise NotFound(f"no organization {slug!r}")
    a, b = (organization_environment(organization, ref, "--env") for ref in references)
    project_id = await command.api.find_project(slug, command.args.project)
    if project_id is None:
        raise NotFound(f"no project {command.args.project!r} in organization {slug!r}")
    comparison = await command.api.compare(project_id, a["id"], b["id"])
    if command.out.json_mode:
        command.out.json(comparison)
        return 0
    show(command, comparison)
    return 0


def show(command: Command, comparison: EnvironmentComparison) -> None:
    out = command.out
    name_a, name_b = comparison["environmentA"]["name"], comparison["environmentB"]["name"]
    integrations = comparison["integrations"]
    out.table(
        ["INTEGRATION", name_a.upper(), name_b.upper(), "DRIFT"],
        [
            [
                (drift["integration"]["name"], "bold"),
                _running(drift, "A"),
                _running(drift, "B"),
                _summary(drift),
            ]
            for drift in integrations
        ],
        title=f"{comparison['project']['name']}: {name_a} against {name_b} "
        f"({comparison['driftedIntegrations']} of {len(integrations)} drifted)",
    )
    # One table for every integration's keys that are not the same: in a pipe, where tables
    # have no titles, each row still says whose key it is.
    keys = [
        [
            drift["integration"]["name"],
            c["key"],
            KINDS.get(c["kind"], c["kind"]),
            _value(c, "A"),
            _value(c, "B"),
        ]
        for drift in integrations
        for c in drift["configuration"]
        if c["kind"] != "SAME"
    ]
    if keys:
        out.line("")
        out.table(
            ["INTEGRATION", "KEY", "DRIFT", name_a.upper(), name_b.upper()],
            keys,
            title="Configuration that is not the same",
        )


def _running(drift: IntegrationDrift, side: str) -> Cell:
    build = drift["buildA"] if side == "A" else drift["buildB"]
    status = drift["statusA"] if side == "A" else drift["statusB"]
    if build is None:
        return styled(status)
    return f"{build['version']} ({status})"


def _summary(drift: IntegrationDrift) -> Cell:
    if not drift["differs"]:
        return ("no", "green")
    parts = [] if drift["sameBuild"] else ["build"]
    drifted = sum(
        1 for c in drift["configuration"] if c["kind"] not in ("SAME", "SECRET_NOT_COMPARED")
    )
    if drifted:
        parts.append(f"{drifted} key{'s' if drifted > 1 else ''}")
    return (", ".join(parts), "yellow")


def _value(entry: ConfigurationDrift, side: str) -> str:
    if entry["kind"] == ("ONLY_IN_B" if side == "A" else "ONLY_IN_A"):
        return ""
    if entry["secret"]:
        return "(secret)"
    value = entry["valueA"] if side == "A" else entry["valueB"]
    return '""' if value == "" else first_line(value or "")
