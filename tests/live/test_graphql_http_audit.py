"""The API speaks GraphQL over HTTP as its specification asks: graphql-http's server audits (the
specification authors' own checks, run by js/audit-graphql-http.mjs on Node.js) against a real
``promenade up``, with the bootstrapped admin's token, find nothing to warn about and no error:
its SHOULDs too (application/graphql-response+json, 4xx for a request that did not run) and the
MAYs it takes up (queries with GET, never mutations)."""

from __future__ import annotations

import json
from typing import Any

from tests.support.node import JS, node_with_packages, run_script
from tests.support.servers import Embedded


async def audit(url: str, token: str) -> list[dict[str, Any]]:
    """Every audit's result: id, name, status (ok, notice, warn, error) and reason."""
    command = [node_with_packages(), str(JS / "audit-graphql-http.mjs")]
    env = {"PROMENADE_URL": f"{url}/graphql", "PROMENADE_TOKEN": token}
    code, stdout, stderr = await run_script(command, env, timeout_s=120)
    assert code == 0, stderr
    results: list[dict[str, Any]] = json.loads(stdout)
    return results


def failing(results: list[dict[str, Any]], *statuses: str) -> list[str]:
    return [
        f"{result['id']} {result['name']}: {result['reason']}"
        for result in results
        if result["status"] in statuses
    ]


async def test_the_graphql_over_http_audit_finds_no_warning_and_no_error(
    embedded: Embedded,
) -> None:
    results = await audit(embedded.url, embedded.token)
    # graphql-http 1.23.1 has 61 audits; fewer would mean the script stopped early.
    assert len(results) >= 61, results
    problems = failing(results, "warn", "error")
    assert problems == [], "\n".join(problems)
    # The MAYs too: GET for queries (and its variables), 400 for malformed parameters.
    assert failing(results, "notice") == []


async def test_the_audit_fails_a_server_it_cannot_use(embedded: Embedded) -> None:
    """Without a valid token every request is refused (401): the audit says so, so that the
    test above passes only for a server that answered."""
    results = await audit(embedded.url, "not-a-token")
    assert len(failing(results, "error")) > 10
