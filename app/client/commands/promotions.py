"""``promenade promote``: the plan first (with secret values masked), refused with its
blockers or sent; ``promenade retry``: a failed promotion again. With ``--wait``, followed
through promotionStatus until a final status, reconnecting with backoff when the connection
drops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

from app.client.api import (
    FINAL_PROMOTION_STATUSES,
    ConfigChange,
    Integration,
    PromoteInput,
    Promotion,
    PromotionEvent,
    PromotionPlan,
)
from app.client.commands.configuration import configuration_entries, secret_keys
from app.client.commands.context import Command, with_timeout
from app.client.commands.names import integration_label, resolve_environment, resolve_integration
from app.client.commands.output import Output, Progress, parse_time, styled
from app.client.errors import (
    EXIT_FAILED,
    ConnectionLost,
    NotFound,
    Refused,
    RequestFailed,
    ServerUnreachable,
    usage,
)
from app.services.errors import Blocker

# Reconnects of promotionStatus after a lost connection, before giving up.
MAX_RECONNECTS = 5

BLOCKERS: dict[str, str] = {
    Blocker.SOURCE_NOT_ACTIVE: "nothing is ACTIVE in {source} to promote",
    Blocker.NOT_NEXT_ENVIRONMENT: "{target} is not the environment after {source} in the pipeline",
    Blocker.ENVIRONMENT_NOT_IN_PIPELINE: "an environment is not in the project's pipeline",
    Blocker.TARGET_FROZEN: "{target} is frozen",
    Blocker.MISSING_CONFIGURATION: "{target} lacks required configuration",
    Blocker.REQUEST_ALREADY_PENDING: "a request to promote to {target} is already pending",
    Blocker.NOT_SOAKED: "the build has not run long enough in {source} yet (see soakedAt)",
}


async def promote(command: Command) -> int:
    args = command.args
    integration = await resolve_integration(command, args.integration)
    source = resolve_environment(integration, args.source, "--from")
    target = resolve_environment(integration, args.target, "--to") if args.target else None
    overrides = configuration_entries(command, integration)
    masked = secret_keys(command, integration)
    request: PromoteInput = {
        "integrationId": integration["id"],
        "sourceEnvironmentId": source["id"],
        "targetEnvironmentId": target["id"] if target else None,
        "overrides": overrides,
        "copySourceConfiguration": bool(args.copy_config),
        "message": args.message,
        "idempotencyKey": str(uuid.uuid4()),
    }
    if args.emergency is not None:
        request["emergency"] = {"reason": args.emergency}
    if args.wait_for_soak:
        request["waitForSoak"] = True
    try:
        found = await command.api.promotion_plan(request)
    except RequestFailed as exc:
        raise usage(f"cannot promote {integration_label(integration)}: {exc}") from None
    if found is None:
        raise NotFound(f"cannot plan the promotion of {integration_label(integration)}")
    plan = mask_plan(found, masked)
    show_plan(command.out, integration, plan)
    # An emergency goes past a freeze (and the reviews); the server checks who may.
    passed = {Blocker.TARGET_FROZEN.value} if args.emergency is not None else set()
    if args.wait_for_soak:
        passed.add(Blocker.NOT_SOAKED.value)
    if [b for b in plan["blockers"] if b not in passed] or plan["missingConfiguration"]:
        if command.out.json_mode:
            command.out.json({"plan": plan, "promotion": None})
        raise usage(refusal(integration, plan))
    try:
        promotion = await command.api.promote(request)
    except Refused as exc:
        if command.out.json_mode:
            command.out.json({"plan": plan, "promotion": None})
        raise usage(f"promotion refused ({exc.typename}): {exc.detail()}") from None
    return await conclude(command, promotion, {"plan": plan})


async def retry(command: Command) -> int:
    """``promenade retry PROMOTION``: a new promotion of a FAILED one (the same build,
    overrides and target), checked against today's rules; followed as ``promote`` is."""
    try:
        promotion = await command.api.retry_promotion(command.args.promotion)
    except Refused as exc:
        if command.out.json_mode:
            command.out.json({"promotion": None})
        raise usage(f"retry refused ({exc.typename}): {exc.detail()}") from None
    return await conclude(command, promotion, {})


async def conclude(command: Command, promotion: Promotion, document: dict[str, object]) -> int:
    """A promotion just sent: said, or with ``--wait`` followed to its end (exit 0 when it
    SUCCEEDED, else EXIT_FAILED); ``--json`` prints ``document`` with the promotion."""
    args = command.args
    if not args.wait:
        if command.out.json_mode:
            command.out.json({**document, "promotion": promotion})
        else:
            command.out.line(
                f"Promotion {promotion['id']}: ",
                styled(promotion["status"]),
                " (follow it with --wait, or query promotion(id))",
            )
        return 0
    final = await with_timeout(
        args.timeout,
        follow_promotion(command, promotion),
        lambda: (
            f"promotion {promotion['id']} did not finish within {args.timeout:g} s "
            "(it goes on without this command)"
        ),
    )
    if command.out.json_mode:
        command.out.json({**document, "promotion": final})
    if final["status"] == "SUCCEEDED":
        command.out.line(
            ("Promoted ", "bold green"),
            f"{final['integration']['name']} {final['build']['version']} from "
            f"{final['sourceEnvironment']['name']} to {final['targetEnvironment']['name']}",
        )
        return 0
    command.out.error(f"promotion {final['id']} {final['status']}: {promotion_reason(final)}")
    return EXIT_FAILED


def mask_plan(plan: PromotionPlan, keys: set[str]) -> PromotionPlan:
    """The plan with the values of secret keys (the schema's, and every ``--secret`` key)
    taken out."""
    changes = []
    for change in plan["configurationChanges"]:
        if change["secret"] or change["key"] in keys:
            change = {**change, "secret": True, "before": None, "after": None}
        changes.append(change)
    return {**plan, "configurationChanges": changes}


def show_plan(out: Output, integration: Integration, plan: PromotionPlan) -> None:
    build = plan["build"]
    version = build["version"] if build else "(nothing to promote)"
    out.line(
        ("Plan: ", "bold"),
        f"{integration['name']} ",
        (version, "bold"),
        f" from {plan['sourceEnvironment']['name']} to ",
        (plan["targetEnvironment"]["name"], "bold"),
        (" (approval required)", "magenta") if plan["requiresApproval"] else "",
    )
    unchanged = 0
    for change in plan["configurationChanges"]:
        kind = change["kind"]
        if kind == "UNCHANGED":
            unchanged += 1
            continue
        before, after = _shown(change["before"], change), _shown(change["after"], change)
        if kind == "ADDED":
            out.line(("  + ", "green"), change["key"], f" = {after}")
        elif kind == "REMOVED":
            out.line(("  - ", "red"), change["key"], " (removed)")
        elif change["secret"]:
            out.line(("  ~ ", "yellow"), change["key"], " (secret, changed)")
        else:
            out.line(("  ~ ", "yellow"), change["key"], f": {before} -> {after}")
    if unchanged:
        out.line(("  ", None), (f"{unchanged} configuration value(s) unchanged", "dim"))
    if not plan["configurationChanges"]:
        out.line(("  no configuration changes", "dim"))
    if plan["missingConfiguration"]:
        out.line(("  missing: ", "bold red"), ", ".join(plan["missingConfiguration"]))
    if plan["blockers"]:
        out.line(("  blockers: ", "bold red"), ", ".join(plan["blockers"]))


def _shown(value: str | None, change: ConfigChange) -> str:
    if change["secret"]:
        return "(secret)"
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)


def refusal(integration: Integration, plan: PromotionPlan) -> str:
    source = plan["sourceEnvironment"]["name"]
    target = plan["targetEnvironment"]["name"]
    reasons = []
    for blocker in plan["blockers"]:
        text = BLOCKERS.get(blocker, blocker).format(source=source, target=target)
        if blocker == Blocker.MISSING_CONFIGURATION and plan["missingConfiguration"]:
            text += ": " + ", ".join(plan["missingConfiguration"])
        reasons.append(text)
    if plan["missingConfiguration"] and Blocker.MISSING_CONFIGURATION not in plan["blockers"]:
        reasons.append(
            f"{target} lacks required configuration: {', '.join(plan['missingConfiguration'])}"
        )
    hint = ""
    if plan["missingConfiguration"]:
        hint = " (give values with --set KEY=VALUE or --secret KEY=VALUE, or --copy-config)"
    return (
        f"cannot promote {integration_label(integration)} from {source} to {target}: "
        + "; ".join(reasons)
        + hint
    )


def promotion_reason(promotion: Promotion) -> str:
    if promotion["error"]:
        return promotion["error"]
    for event in reversed(promotion["events"]):
        if event["detail"]:
            return event["detail"]
    return f"the promotion ended {promotion['status']}"


async def follow_promotion(command: Command, promotion: Promotion) -> Promotion:
    """Follow the promotion through the promotionStatus subscription until a final status
    (reconnecting when the connection drops); the promotion as it ended."""
    title = f"Promoting {promotion['build']['version']} to {promotion['targetEnvironment']['name']}"
    seen: set[tuple[str, str]] = set()
    connected = False
    reconnects = 0
    with Progress(command.out, title) as progress:
        for event in promotion["events"]:
            _show_once(seen, event, progress)
        while True:
            try:
                async with contextlib.aclosing(
                    command.api.promotion_status(promotion["id"])
                ) as events:
                    first = True
                    async for event in events:
                        connected, reconnects = True, 0
                        if first and (event["at"], event["status"]) not in seen:
                            # The subscription starts at the current status: show the ones
                            # reached before it, in order.
                            await _catch_up(command, promotion["id"], event, seen, progress)
                        first = False
                        _show_once(seen, event, progress)
                        if event["status"] in FINAL_PROMOTION_STATUSES:
                            return await command.api.promotion(promotion["id"])
            except (ConnectionLost, ServerUnreachable):
                if not connected or reconnects >= MAX_RECONNECTS:
                    raise
                reconnects += 1
                await asyncio.sleep(min(0.25 * 2**reconnects, 5.0))
                continue
            # Completed without a final status in sight: look, and follow again if need be.
            current = await command.api.promotion(promotion["id"])
            if current["status"] in FINAL_PROMOTION_STATUSES:
                for event in current["events"]:
                    _show_once(seen, event, progress)
                return current


async def _catch_up(
    command: Command,
    promotion_id: str,
    first: PromotionEvent,
    seen: set[tuple[str, str]],
    progress: Progress,
) -> None:
    before = parse_time(first["at"])
    for event in (await command.api.promotion(promotion_id))["events"]:
        if parse_time(event["at"]) < before:
            _show_once(seen, event, progress)


def _show_once(seen: set[tuple[str, str]], event: PromotionEvent, progress: Progress) -> bool:
    key = (event["at"], event["status"])
    if key in seen:
        return False
    seen.add(key)
    progress.step(event["status"], event["detail"], event["at"])
    return True
