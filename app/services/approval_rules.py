"""Approval rules: who may review a request into a protected environment, and how many of
them must approve it. A policy holds one rule or several ("1 from QA and 2 from Operators");
a request is approved when every rule has its approvals, and a review counts toward every rule
its reviewer satisfied when they gave it.

A request keeps the rules it was filed under (``Promotion.approval_rule``), so that changing a
policy applies to new requests only; a review keeps the rules it counted toward
(``Review.counted_toward``), so that a reviewer's later change of role does not rewrite it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from app.models import ApprovalPolicy, Promotion, Review, ReviewDecision, Role

# The name of the one rule of a policy set the original way (requiredApprovals with its
# reviewer roles and named reviewers), and of the rule of a request filed before rules existed.
DEFAULT_RULE_NAME = "Reviewers"


@dataclass(frozen=True)
class ApprovalRule:
    name: str
    required_approvals: int
    roles: tuple[str, ...] = ()
    approver_ids: tuple[str, ...] = ()

    def admits(self, user_id: str, role: Role) -> bool:
        return role.value in self.roles or user_id in self.approver_ids

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "required_approvals": self.required_approvals,
            "roles": list(self.roles),
            "approver_ids": list(self.approver_ids),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalRule:
        return cls(
            name=str(data["name"]),
            required_approvals=int(data["required_approvals"]),
            roles=tuple(data.get("roles", ())),
            approver_ids=tuple(data.get("approver_ids", ())),
        )


@dataclass(frozen=True)
class RuleProgress:
    rule: ApprovalRule
    approver_ids: tuple[str, ...]  # who approved toward it, in the order they did

    @property
    def approvals(self) -> int:
        return len(self.approver_ids)

    @property
    def met(self) -> bool:
        return self.approvals >= self.rule.required_approvals


@dataclass(frozen=True)
class RequestRules:
    """The rules a request was filed under, and whether its requester may review it."""

    rules: tuple[ApprovalRule, ...]
    allow_self_approval: bool = False

    @property
    def required_approvals(self) -> int:
        """The approvals the rules add up to: what a request needs when no reviewer counts
        toward two rules (fewer distinct reviews may do when rules overlap)."""
        return sum(rule.required_approvals for rule in self.rules)

    def satisfied_by(self, user_id: str, role: Role) -> list[str]:
        """The names of the rules a review by this user counts toward."""
        return [rule.name for rule in self.rules if rule.admits(user_id, role)]

    def why_not_reviewer(
        self, *, reviewer_id: str, role: Role | None, requester_id: str
    ) -> str | None:
        """None when the user may review the request, else the reason."""
        if role is None:
            return "not a member of the organization"
        if reviewer_id == requester_id and not self.allow_self_approval:
            return "the requester may not review their own request under this policy"
        if self.satisfied_by(reviewer_id, role):
            return None
        roles = sorted({r for rule in self.rules for r in rule.roles})
        return (
            f"the {role.value} role is not among the policy's reviewer roles "
            f"({', '.join(roles) or 'none'}) and you are not a named reviewer"
        )

    def progress(self, reviews: Iterable[Review]) -> list[RuleProgress]:
        """Each rule with the approvals that count toward it. A review from before rules were
        kept on reviews (``counted_toward`` null) counts toward each rule: it was given under
        the request's one rule."""
        approved = sorted(
            (r for r in reviews if r.decision is ReviewDecision.APPROVED),
            key=lambda r: (r.created_at, r.id),
        )
        return [
            RuleProgress(
                rule=rule,
                approver_ids=tuple(
                    r.reviewer_id
                    for r in approved
                    if r.counted_toward is None or rule.name in r.counted_toward
                ),
            )
            for rule in self.rules
        ]

    def as_json(self) -> dict[str, Any]:
        """What a request keeps. ``roles`` and ``approver_ids`` (every rule's, together) are
        what requests kept before rules: kept for whoever reads that shape."""
        return {
            "rules": [rule.as_json() for rule in self.rules],
            "allow_self_approval": self.allow_self_approval,
            "roles": sorted({r for rule in self.rules for r in rule.roles}),
            "approver_ids": list(
                dict.fromkeys(i for rule in self.rules for i in rule.approver_ids)
            ),
        }


def rules_of_policy(policy: ApprovalPolicy) -> RequestRules:
    rules = (
        tuple(ApprovalRule.from_json(rule) for rule in policy.rules)
        if policy.rules
        # A policy set before rules were kept: its one rule is in the columns of their own.
        else (
            ApprovalRule(
                name=DEFAULT_RULE_NAME,
                required_approvals=policy.required_approvals,
                roles=tuple(policy.approver_roles),
                approver_ids=tuple(policy.approver_ids),
            ),
        )
    )
    return RequestRules(rules=rules, allow_self_approval=policy.allow_self_approval)


def rules_of_request(promotion: Promotion) -> RequestRules:
    """The rules the request was filed under (none when it needed no review)."""
    kept = promotion.approval_rule
    if kept is None:
        return RequestRules(rules=())
    if "rules" in kept:
        rules = tuple(ApprovalRule.from_json(rule) for rule in kept["rules"])
    else:
        # Filed before rules: one rule, its count on the request.
        rules = (
            ApprovalRule(
                name=DEFAULT_RULE_NAME,
                required_approvals=promotion.required_approvals,
                roles=tuple(kept.get("roles", ())),
                approver_ids=tuple(kept.get("approver_ids", ())),
            ),
        )
    return RequestRules(rules=rules, allow_self_approval=bool(kept.get("allow_self_approval")))


def describe_required(rules: RequestRules) -> str:
    """``2 approval(s) required``, or with several rules
    ``3 approval(s) required: 1 from QA, 2 from Operators``."""
    text = f"{rules.required_approvals} approval(s) required"
    if len(rules.rules) == 1:
        return text
    return text + ": " + ", ".join(f"{r.required_approvals} from {r.name}" for r in rules.rules)


def describe_progress(progress: Sequence[RuleProgress]) -> str:
    """``1/2``, or with several rules ``QA 1/1, Operators 1/2``."""
    if len(progress) == 1:
        (only,) = progress
        return f"{only.approvals}/{only.rule.required_approvals}"
    return ", ".join(f"{p.rule.name} {p.approvals}/{p.rule.required_approvals}" for p in progress)
