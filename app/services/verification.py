"""Verification: the checks a deployment's changes must pass once their instance takes traffic.

A check asks the deployment's endpoint for a path (GET, or POST with a body) and expects a
status and, optionally, a substring of the body or a JSON field's value. Each check is asked
``attempts`` times, ``interval_s`` apart; it passes when at most ``failure_limit`` of its
attempts fail, and a run passes when every check does. What is kept of an answer is its status
and why it failed, never its body: an integration may answer anything, secrets included.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.models import Deployment, Role, User, VerificationRun
from app.models.base import utcnow
from app.services import audit
from app.services.approval_policies import policy_of
from app.services.auth import Permission, get_owned, role_in
from app.services.errors import Conflict, Forbidden, InvalidInput

MAX_CHECKS = 10
MAX_ATTEMPTS = 20
MAX_INTERVAL_S = 300.0
MAX_TIMEOUT_S = 60.0
# A path of the endpoint: no scheme, host or whitespace (the checks only ever ask the
# deployment's own endpoint).
PATH = re.compile(r"/(?!/)[^\s\\]{0,499}")
METHODS = ("GET", "POST")


@dataclass(frozen=True)
class Check:
    name: str
    path: str = "/"
    method: str = "GET"
    body: str | None = None
    expect_status: int = 200
    body_contains: str | None = None
    # A dotted path into the JSON answer ("status", "checks.db"), and the value it must hold.
    json_field: str | None = None
    json_value: str | None = None


@dataclass(frozen=True)
class Verification:
    checks: tuple[Check, ...]
    attempts: int = 3
    interval_s: float = 1.0
    failure_limit: int = 0
    timeout_s: float = 5.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [asdict(check) for check in self.checks]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verification:
        return cls(
            checks=tuple(Check(**check) for check in data["checks"]),
            attempts=data["attempts"],
            interval_s=data["interval_s"],
            failure_limit=data["failure_limit"],
            timeout_s=data["timeout_s"],
        )


@dataclass
class Answer:
    attempt: int
    status: int | None
    passed: bool
    detail: str


@dataclass
class CheckResult:
    name: str
    passed: bool
    answers: list[Answer] = field(default_factory=list)


@dataclass
class Outcome:
    passed: bool
    checks: list[CheckResult]

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(check) for check in self.checks]

    def summary(self) -> str:
        """Why it failed, check by check: each failing check's last failed answer."""
        failed = [check for check in self.checks if not check.passed]
        if not failed:
            return "every check passed"
        parts = []
        for check in failed:
            misses = [a for a in check.answers if not a.passed]
            parts.append(
                f"{check.name}: {len(misses)} of {len(check.answers)} attempts failed "
                f"({misses[-1].detail})"
            )
        return "verification failed: " + "; ".join(parts)


def validate(verification: Verification) -> Verification:
    """The verification as stored, or InvalidInput naming the field."""
    if not 1 <= len(verification.checks) <= MAX_CHECKS:
        raise InvalidInput(f"give 1 to {MAX_CHECKS} checks", field="checks")
    names: set[str] = set()
    for n, check in enumerate(verification.checks):
        where = f"checks.{n}"
        name = check.name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("a check needs a name of 1 to 100 characters", field=f"{where}.name")
        if name in names:
            raise InvalidInput(f"two checks are named {name}", field=f"{where}.name")
        names.add(name)
        if PATH.fullmatch(check.path) is None:
            raise InvalidInput(
                "the path must start with a single / and hold no spaces (it is asked of the "
                "deployment's own endpoint)",
                field=f"{where}.path",
            )
        if check.method not in METHODS:
            raise InvalidInput("the method must be GET or POST", field=f"{where}.method")
        if check.body is not None and (check.method != "POST" or len(check.body) > 10_000):
            raise InvalidInput("only a POST has a body, of up to 10,000 characters", field=where)
        if not 100 <= check.expect_status <= 599:
            raise InvalidInput("an HTTP status is 100 to 599", field=f"{where}.expectStatus")
        if (check.json_field is None) != (check.json_value is None):
            raise InvalidInput("jsonField and jsonValue go together", field=f"{where}.jsonField")
    if not 1 <= verification.attempts <= MAX_ATTEMPTS:
        raise InvalidInput(f"attempts must be 1 to {MAX_ATTEMPTS}", field="attempts")
    if not 0 <= verification.interval_s <= MAX_INTERVAL_S:
        raise InvalidInput(f"intervalSeconds must be 0 to {MAX_INTERVAL_S:g}", field="interval")
    if not 0 <= verification.failure_limit < verification.attempts:
        raise InvalidInput("failureLimit must be below attempts", field="failureLimit")
    if not 0 < verification.timeout_s <= MAX_TIMEOUT_S:
        raise InvalidInput(f"timeoutSeconds must be up to {MAX_TIMEOUT_S:g}", field="timeout")
    return Verification(
        checks=tuple(
            Check(**{**asdict(check), "name": check.name.strip()}) for check in verification.checks
        ),
        attempts=verification.attempts,
        interval_s=verification.interval_s,
        failure_limit=verification.failure_limit,
        timeout_s=verification.timeout_s,
    )


async def set_verification(
    session: AsyncSession,
    *,
    actor: User,
    deployment_id: str,
    verification: Verification | None,
) -> Deployment:
    """The checks the deployment's next changes must pass (None: no more checks). In an
    environment with an approval policy only an ADMIN sets them: there, the checks guard what
    the reviewers approved, and a developer could otherwise remove them."""
    deployment = await get_owned(
        session, Deployment, deployment_id, actor=actor, permission=Permission.DEVELOP
    )
    if await policy_of(session, deployment.environment_id) is not None and (
        await role_in(session, user_id=actor.id, organization_id=deployment.organization_id)
        is not Role.ADMIN
    ):
        raise Forbidden(
            "the environment is protected by an approval policy: only an ADMIN sets its "
            "verification"
        )
    stored = validate(verification) if verification is not None else None
    deployment.verification = stored.to_json() if stored is not None else None
    session.add(deployment)
    audit.record(
        session,
        organization_id=deployment.organization_id,
        actor=actor,
        action="deployment.verification_set",
        subject_id=deployment.id,
        checks=[check.name for check in stored.checks] if stored else [],
    )
    return deployment


def verification_of(deployment: Deployment) -> Verification | None:
    return Verification.from_json(deployment.verification) if deployment.verification else None


# ---- running the checks -------------------------------------------------------------------


async def run_checks(endpoint: str, verification: Verification) -> Outcome:
    """Every check, its attempts ``interval_s`` apart (the checks side by side)."""
    async with httpx.AsyncClient(
        timeout=verification.timeout_s, trust_env=False, follow_redirects=False
    ) as client:
        results = await asyncio.gather(
            *(_run_check(client, endpoint, check, verification) for check in verification.checks)
        )
    return Outcome(passed=all(r.passed for r in results), checks=list(results))


async def _run_check(
    client: httpx.AsyncClient, endpoint: str, check: Check, verification: Verification
) -> CheckResult:
    result = CheckResult(name=check.name, passed=False)
    url = endpoint.rstrip("/") + check.path
    for attempt in range(1, verification.attempts + 1):
        if attempt > 1:
            await asyncio.sleep(verification.interval_s)
        result.answers.append(await _ask(client, url, check, attempt))
    failures = sum(1 for answer in result.answers if not answer.passed)
    result.passed = failures <= verification.failure_limit
    return result


async def _ask(client: httpx.AsyncClient, url: str, check: Check, attempt: int) -> Answer:
    try:
        response = await client.request(check.method, url, content=check.body)
    except httpx.HTTPError as exc:
        return Answer(attempt, None, False, f"no answer ({type(exc).__name__})")
    status = response.status_code
    if status != check.expect_status:
        return Answer(attempt, status, False, f"answered {status}, expected {check.expect_status}")
    if check.body_contains is not None and check.body_contains not in response.text:
        return Answer(attempt, status, False, f"the body lacks {check.body_contains!r}")
    if check.json_field is not None:
        found = _json_field(response.text, check.json_field)
        if found != check.json_value:
            shown = "nothing" if found is None else "another value"
            return Answer(
                attempt, status, False, f"{check.json_field} holds {shown}, expected the value set"
            )
    return Answer(attempt, status, True, "passed")


def _json_field(text: str, path: str) -> str | None:
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value if isinstance(value, str) else json.dumps(value)


# ---- the history --------------------------------------------------------------------------


def record_run(
    session: AsyncSession,
    deployment: Deployment,
    outcome: Outcome,
    *,
    started_at: Any,
    change_id: str | None,
) -> VerificationRun:
    run = VerificationRun(
        organization_id=deployment.organization_id,
        deployment_id=deployment.id,
        change_id=change_id,
        revision=deployment.revision,
        passed=outcome.passed,
        checks=outcome.to_json(),
        started_at=started_at,
    )
    session.add(run)
    return run


async def verify_now(session: AsyncSession, *, actor: User, deployment_id: str) -> VerificationRun:
    """``verifyDeployment``: the checks run against what serves now, and the run is kept."""
    deployment = await get_owned(
        session, Deployment, deployment_id, actor=actor, permission=Permission.DEVELOP
    )
    verification = verification_of(deployment)
    if verification is None:
        raise Conflict("the deployment has no verification checks (setVerification)")
    if deployment.endpoint_url is None:
        raise Conflict("nothing serves in this deployment to verify")
    endpoint, organization_id, revision = (
        deployment.endpoint_url,
        deployment.organization_id,
        deployment.revision,
    )
    # No transaction (nor database connection) is held while the checks run: they may take
    # attempts x (interval + timeout).
    await session.commit()
    started = utcnow()
    outcome = await run_checks(endpoint, verification)
    run = VerificationRun(
        organization_id=organization_id,
        deployment_id=deployment_id,
        change_id=None,
        revision=revision,
        passed=outcome.passed,
        checks=outcome.to_json(),
        started_at=started,
    )
    session.add(run)
    audit.record(
        session,
        organization_id=organization_id,
        actor=actor,
        action="deployment.verified",
        subject_id=deployment_id,
        passed=outcome.passed,
    )
    await session.flush()
    return run


async def runs_of(
    session: AsyncSession, deployment_id: str, limit: int
) -> Sequence[VerificationRun]:
    """The deployment's verification runs, newest first."""
    rows = await session.exec(
        select(VerificationRun)
        .where(VerificationRun.deployment_id == deployment_id)
        .order_by(col(VerificationRun.finished_at).desc(), col(VerificationRun.id).desc())
        .limit(limit)
    )
    return rows.all()
