"""Verification through real processes: Production checks that the greeter answers as the good
build does. A promotion of that build passes (VERIFYING, then SUCCEEDED); a promotion of a bad
build goes live, fails its checks while the worker verifying it is killed and another takes
over, and is rolled back by itself: the promotion ends FAILED with each check's answers, a new
ROLLBACK revision names the failed verification, and the good build answers again. Each run is
kept once; a run asked for afterwards passes."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.graphql_client import GraphQLClient
from tests.support.greeter import Greeter, greeter_artifact, greeting, new_greeter
from tests.support.installations import Cluster
from tests.support.waiting import eventually

DEVELOPMENT = {"GREETING": "Hello", "API_KEY": "dev-key"}
PRODUCTION = {"GREETING": "Hello from Production", "API_KEY": "prod-key"}

SET_VERIFICATION = """mutation($input: SetVerificationInput!) { setVerification(input: $input) {
    __typename ... on Error { code message }
    ... on Deployment { verification { attempts checks { name jsonField jsonValue } } } } }"""
VERIFY = """mutation($id: ID!) { verifyDeployment(id: $id) {
    __typename ... on Error { code message } ... on VerificationRun { passed revision } } }"""
PRODUCTION_STATE = """query($integration: ID!, $environment: ID!) {
    integration(id: $integration) { deployment(environmentId: $environment) {
        id status revision lastError
        history(first: 10) { edges { node { revision cause reason build { version } } } }
        verifications(first: 10) {
            revision passed changeId
            checks { name passed answers { attempt status passed detail } }
        }
    } } }"""
CHECKS = {
    "checks": [
        {"name": "answers", "path": "/", "jsonField": "environment", "jsonValue": "good"},
    ],
    "attempts": 3,
    "intervalSeconds": 0.2,
    "failureLimit": 1,
}


async def production(greeter: Greeter) -> dict[str, Any]:
    data = await greeter.api.execute(
        PRODUCTION_STATE,
        {"integration": greeter.integration_id, "environment": greeter.environments["Production"]},
    )
    deployment: dict[str, Any] = data["integration"]["deployment"]
    return deployment


async def test_a_build_that_fails_its_checks_is_rolled_back_and_the_old_one_answers(
    api: GraphQLClient, workers: Cluster
) -> None:
    greeter = await new_greeter(api, workers.gateway_url)
    await greeter.create_build("1.1.0", greeter_artifact("good"))
    await greeter.create_build("2.0.0", greeter_artifact("bad"))
    worker = workers.start_worker()
    set_ = await api.ok(
        SET_VERIFICATION, {"input": {"deploymentId": (await production(greeter))["id"], **CHECKS}}
    )
    assert set_["verification"]["checks"][0]["jsonValue"] == "good"

    await greeter.deploy(DEVELOPMENT, version="1.1.0")
    good = await greeter.promote("Development", overrides=PRODUCTION)
    passed = await greeter.wait_promotion(good["id"], within=60)
    assert passed["status"] == "SUCCEEDED", passed
    assert [e["status"] for e in passed["events"]][-2:] == ["VERIFYING", "SUCCEEDED"]

    await greeter.deploy(DEVELOPMENT, version="2.0.0")
    worker.kill()
    paused = workers.start_worker(pause_after_step="RESTARTING")
    bad = await greeter.promote("Development")
    assert bad["__typename"] == "Promotion", bad
    await asyncio.to_thread(paused.wait_for_log, "pausing after RESTARTING")
    # Live and VERIFYING: the bad build takes traffic while its checks would run.
    assert (await greeting(greeter.endpoint("prod")))["environment"] == "bad"
    paused.kill()
    workers.start_worker()  # runs the checks again once the dead worker's lease expires

    failed = await greeter.wait_promotion(bad["id"], within=60)
    assert failed["status"] == "FAILED", failed
    assert "VERIFYING" in [e["status"] for e in failed["events"]]
    assert "verification failed: answers: 3 of 3 attempts failed" in failed["error"]

    async def rolled_back() -> dict[str, Any] | None:
        state = await production(greeter)
        return state if state["status"] == "ACTIVE" and state["revision"] == 3 else None

    state = await eventually(rolled_back, within=60, what="the rollback to go live")
    history = [edge["node"] for edge in state["history"]["edges"]]  # newest first
    assert [(r["revision"], r["cause"], r["build"]["version"]) for r in history] == [
        (3, "ROLLBACK", "1.1.0"),
        (2, "PROMOTION", "2.0.0"),
        (1, "PROMOTION", "1.1.0"),
    ]
    assert "verification failed" in history[0]["reason"]
    assert history[1]["reason"] is None
    assert (await greeting(greeter.endpoint("prod")))["environment"] == "good"
    assert (await greeting(greeter.endpoint("prod")))["greeting"] == PRODUCTION["GREETING"]

    # One run per verified change, the killed worker's included once; the rollback is not
    # verified (it restores what passed).
    runs = state["verifications"]
    assert [(r["revision"], r["passed"]) for r in runs] == [(2, False), (1, True)]
    [answers] = runs[0]["checks"]
    assert [a["status"] for a in answers["answers"]] == [200, 200, 200]
    assert answers["answers"][0]["detail"] == (
        "environment holds another value, expected the value set"
    )

    asked = await api.ok(VERIFY, {"id": state["id"]})
    assert (asked["passed"], asked["revision"]) == (True, 3)
    assert len((await production(greeter))["verifications"]) == 3
