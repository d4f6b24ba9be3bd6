"""GraphQL documents of the end-to-end tests: deployments, promotions and the mutations that
change them, each selecting the error types a test may meet."""

from __future__ import annotations

ERRORS = """
    __typename
    ... on Error { code message }
    ... on MissingConfigurationError { missingKeys environment { name } }
    ... on PromotionBlockedError { blockers }
"""
DEPLOYMENT_FIELDS = """
    id status revision endpointUrl lastError restartRequired
    environment { name }
    build { id version }
    configuration { key value secret }
    missingConfiguration
    history(first: 100) {
        totalCount
        edges { node { revision cause configurationDigest build { id version } promotion { id } } }
    }
"""
DEPLOYMENT = f"""
query($integration: ID!, $environment: ID!) {{
    integration(id: $integration) {{
        deployment(environmentId: $environment) {{ {DEPLOYMENT_FIELDS} }}
    }}
}}
"""
PROMOTION_FIELDS = """
    id status error finishedAt
    build { id version }
    sourceEnvironment { name }
    targetEnvironment { name }
    overrides { key value secret }
    events { status detail at }
"""
PROMOTION = f"query($id: ID!) {{ promotion(id: $id) {{ {PROMOTION_FIELDS} }} }}"
PROMOTIONS = """
query($integration: ID!) {
    integration(id: $integration) {
        promotions(first: 100) { totalCount edges { node { id status } } }
    }
}
"""
PROMOTE = f"""
mutation($input: PromoteInput!) {{
    promote(input: $input) {{ {ERRORS} ... on Promotion {{ {PROMOTION_FIELDS} }} }}
}}
"""
PROMOTION_PLAN = """
query($input: PromoteInput!) {
    promotionPlan(input: $input) {
        build { id version }
        sourceEnvironment { name }
        targetEnvironment { name }
        missingConfiguration
        configurationChanges { key secret before after kind }
        requiresApproval
        blockers
    }
}
"""
_DEPLOYMENT_RESULT = f"{ERRORS} ... on Deployment {{ {DEPLOYMENT_FIELDS} }}"
DEPLOY = f"mutation($input: DeployInput!) {{ deploy(input: $input) {{ {_DEPLOYMENT_RESULT} }} }}"
SET_CONFIGURATION = f"""
mutation($input: SetConfigurationInput!) {{
    setConfiguration(input: $input) {{ {_DEPLOYMENT_RESULT} }}
}}
"""
RESTART = f"mutation($id: ID!) {{ restartDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
SUSPEND = f"mutation($id: ID!) {{ suspendDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
RESUME = f"mutation($id: ID!) {{ resumeDeployment(id: $id) {{ {_DEPLOYMENT_RESULT} }} }}"
ROLLBACK = f"""
mutation($input: RollbackInput!) {{ rollback(input: $input) {{ {_DEPLOYMENT_RESULT} }} }}
"""


# ---- subscriptions -------------------------------------------------------------------------

PROMOTION_STATUS = """
subscription($id: ID!) { promotionStatus(id: $id) { promotionId status detail at } }
"""
DEPLOYMENT_EVENTS = """
subscription($environmentId: ID, $integrationId: ID) {
    deploymentEvents(environmentId: $environmentId, integrationId: $integrationId) {
        deploymentId integrationId environmentId status revision endpointUrl detail at
    }
}
"""
# The statuses of a promotion without approval that works, in order.
PROMOTION_STATUSES = ["QUEUED", "APPLYING_CONFIGURATION", "RESTARTING", "SUCCEEDED"]
