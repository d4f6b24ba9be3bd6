#!/usr/bin/env bash
# The README's walk-through, runnable: against a running `promenade up`, it creates Staging,
# a pipeline Development -> Staging -> Production, a project, an integration with a secret,
# a build, sets Development's configuration and reads it back (the secret masked), deploys the
# build to Development, promotes it to Staging with an override, and calls both endpoints; then
# protects Production with an approval policy: the promotion waits for a reviewer's approval.
# Then a scheduled promotion that starts by itself, and a broken build that Staging's
# verification rolls back.
#
#   TOKEN=<the token `promenade up` printed> examples/walkthrough.sh
#
# Run it from the repository (it uses .venv/bin/promenade bootstrap to give the reviewer a
# token; set PROMENADE_BIN otherwise), against the data directory of that `promenade up`.
set -euo pipefail
URL=${PROMENADE_URL:-http://127.0.0.1:8000}
: "${TOKEN:?set TOKEN to the API token that promenade up printed}"

# gql and wait_for: one GraphQL request, and waiting for a condition.
# shellcheck source=examples/gql.sh
source "$(dirname "${BASH_SOURCE[0]}")/gql.sh"

# 1. Who am I, and which organization?
ORG=$(gql '{ organization(slug: "default") { id } }' | jq -r '.organization.id')
echo "organization: $ORG"

# 2. A Staging environment between Development and Production.
STAGING=$(gql 'mutation($org: ID!) {
  createEnvironment(input: {organizationId: $org, name: "Staging", dnsPrefix: "stg",
                            position: 1}) {
    __typename ... on Environment { id } ... on Error { message } } }' \
  "{\"org\": \"$ORG\"}" | jq -r '.createEnvironment.id')
gql '{ organization(slug: "default") { environments { name dnsPrefix position } } }' \
  | jq -c '.organization.environments[]'

# 3. A pipeline through all three, made the default.
ENVS=$(gql '{ organization(slug: "default") { environments { id } } }' \
  | jq -c '[.organization.environments[].id]')
PIPELINE=$(gql 'mutation($org: ID!, $envs: [ID!]!) {
  createPipeline(input: {organizationId: $org, name: "Release", environmentIds: $envs,
                         isDefault: true}) {
    __typename ... on DeploymentPipeline { id name environments { name } } } }' \
  "{\"org\": \"$ORG\", \"envs\": $ENVS}" | jq -r '.createPipeline.id')
echo "pipeline: $PIPELINE"

# 4. A project on that pipeline, and an integration that declares its configuration.
PROJECT=$(gql 'mutation($org: ID!, $pipeline: ID!) {
  createProject(input: {organizationId: $org, name: "Billing", pipelineId: $pipeline}) {
    ... on Project { id slug } } }' \
  "{\"org\": \"$ORG\", \"pipeline\": \"$PIPELINE\"}" | jq -r '.createProject.id')
INTEGRATION=$(gql 'mutation($project: ID!) {
  createIntegration(input: {projectId: $project, name: "Greeter", configSchema: [
      {key: "GREETING", type: STRING, required: true},
      {key: "REPEAT", type: INT, required: false, defaultValue: "1"},
      {key: "API_KEY", type: STRING, required: true, secret: true}]}) {
    ... on Integration { id slug } } }' \
  "{\"project\": \"$PROJECT\"}" | jq -r '.createIntegration.id')
echo "integration: $INTEGRATION"

# 5. A build: the same artifact moves unchanged from environment to environment. For the
#    LOCAL_PROCESS data plane an artifact is a command line: here, the sample greeter.
ARTIFACT="python3 $(cd "$(dirname "$0")/greeter" && pwd)/app.py"
BUILD=$(gql 'mutation($integration: ID!, $artifact: String!) {
  createBuild(input: {integrationId: $integration, version: "1.0.0", artifact: $artifact,
                      commit: "abc1234"}) {
    ... on Build { id version } } }' \
  "$(jq -n --arg i "$INTEGRATION" --arg a "$ARTIFACT" '{integration: $i, artifact: $a}')" \
  | jq -r '.createBuild.id')
echo "build: $BUILD"

# 6. Development's configuration: its own values, the secret encrypted at rest.
DEV=$(gql '{ organization(slug: "default") { environments { id name } } }' \
  | jq -r '.organization.environments[] | select(.name == "Development") | .id')
gql 'mutation($integration: ID!, $env: ID!) {
  setConfiguration(input: {integrationId: $integration, environmentId: $env, entries: [
      {key: "GREETING", value: "Hello from Development"},
      {key: "API_KEY", value: "dev-secret-value"}]}) {
    __typename ... on Error { message } } }' \
  "{\"integration\": \"$INTEGRATION\", \"env\": \"$DEV\"}" | jq -c '.setConfiguration'

# 7. Read it back: one deployment per pipeline environment; the secret's value is null.
gql 'query($integration: ID!) { integration(id: $integration) { deployments {
    environment { name } status restartRequired missingConfiguration
    configuration { key value secret } } } }' "{\"integration\": \"$INTEGRATION\"}" \
  | jq -c '.integration.deployments[]'

# 8. Deploy the build to Development, the first environment of the pipeline.
gql 'mutation($integration: ID!, $build: ID!, $env: ID!) {
  deploy(input: {integrationId: $integration, buildId: $build, environmentId: $env}) {
    __typename ... on Deployment { status } ... on Error { message } } }' \
  "{\"integration\": \"$INTEGRATION\", \"build\": \"$BUILD\", \"env\": \"$DEV\"}" \
  | jq -c '.deploy'
wait_for 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    status } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$DEV\"}" \
  '.integration.deployment.status == "ACTIVE"'
DEV_URL=$(gql 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    endpointUrl } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$DEV\"}" \
  | jq -r '.integration.deployment.endpointUrl')
echo "development answers: $(curl -sS "$DEV_URL")"

# 9. What would a promotion to Staging do? Staging has none of Development's values.
PROMOTE="{\"integrationId\": \"$INTEGRATION\", \"sourceEnvironmentId\": \"$DEV\"}"
gql 'query($in: PromoteInput!) { promotionPlan(input: $in) { targetEnvironment { name }
    missingConfiguration blockers } }' "{\"in\": $PROMOTE}" | jq -c '.promotionPlan'

# 10. Promote the same build to Staging with Staging's own values, and wait for it.
PROMOTION=$(gql 'mutation($in: PromoteInput!) { promote(input: $in) {
    __typename ... on Promotion { id status } ... on Error { message } } }' \
  "{\"in\": $(jq -c '. + {overrides: [{key: "GREETING", value: "Hello from Staging"},
                                       {key: "API_KEY", value: "staging-secret-value"}],
                          message: "first release to Staging"}' <<<"$PROMOTE")}" \
  | jq -r '.promote.id')
wait_for 'query($p: ID!) { promotion(id: $p) { status } }' "{\"p\": \"$PROMOTION\"}" \
  '.promotion.status == "SUCCEEDED" or .promotion.status == "FAILED"'
gql 'query($p: ID!) { promotion(id: $p) { status build { version } events { status } } }' \
  "{\"p\": \"$PROMOTION\"}" | jq -c '.promotion'

# 11. Each environment runs the same build with its own configuration.
STAGING_URL=$(gql 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    endpointUrl } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$STAGING\"}" \
  | jq -r '.integration.deployment.endpointUrl')
echo "staging answers: $(curl -sS "$STAGING_URL")"
echo "development answers: $(curl -sS "$DEV_URL")"

# 12. Production needs a review: one approval by an APPROVER or ADMIN (not the requester).
PROD=$(gql '{ organization(slug: "default") { environments { id name } } }' \
  | jq -r '.organization.environments[] | select(.name == "Production") | .id')
gql 'mutation($env: ID!) { setApprovalPolicy(input: {environmentId: $env, requiredApprovals: 1,
    approverRoles: [ADMIN, APPROVER]}) {
    ... on Environment { name approvalPolicy { requiredApprovals approverRoles } } } }' \
  "{\"env\": \"$PROD\"}" | jq -c '.setApprovalPolicy'

# 13. A reviewer: a member with the APPROVER role, and a token for them.
gql 'mutation($org: ID!) { addMember(input: {organizationId: $org, email: "rita@example.com",
    name: "Rita", role: APPROVER}) { ... on Membership { role user { email } } } }' \
  "{\"org\": \"$ORG\"}" | jq -c '.addMember'
REVIEWER_TOKEN=$("${PROMENADE_BIN:-.venv/bin/promenade}" bootstrap --email rita@example.com \
  2>/dev/null)

# 14. Promote Staging -> Production: the request waits for the review; nothing runs yet.
REQUEST=$(gql 'mutation($in: PromoteInput!) { promote(input: $in) {
    __typename ... on Promotion { id status requiredApprovals } ... on Error { message } } }' \
  "{\"in\": {\"integrationId\": \"$INTEGRATION\", \"sourceEnvironmentId\": \"$STAGING\",
    \"overrides\": [{\"key\": \"GREETING\", \"value\": \"Hello from Production\"},
                    {\"key\": \"API_KEY\", \"value\": \"production-secret-value\"}]}}")
echo "request: $(jq -c '.promote' <<<"$REQUEST")"
REQUEST_ID=$(jq -r '.promote.id' <<<"$REQUEST")

# 15. The reviewer sees it waiting and approves it; it then runs by itself.
TOKEN=$REVIEWER_TOKEN gql '{ organization(slug: "default") { pendingApprovals {
    edges { node { id status requestedBy { email } targetEnvironment { name } } } } } }' \
  | jq -c '.organization.pendingApprovals.edges[].node'
TOKEN=$REVIEWER_TOKEN gql 'mutation($p: ID!) { approvePromotion(id: $p, comment: "ship it") {
    __typename ... on Promotion { status reviews { decision reviewer { email } } }
    ... on Error { message } } }' "{\"p\": \"$REQUEST_ID\"}" | jq -c '.approvePromotion'
wait_for 'query($p: ID!) { promotion(id: $p) { status } }' "{\"p\": \"$REQUEST_ID\"}" \
  '.promotion.status == "SUCCEEDED" or .promotion.status == "FAILED"'
PROD_URL=$(gql 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    endpointUrl } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$PROD\"}" \
  | jq -r '.integration.deployment.endpointUrl')
echo "production answers: $(curl -sS "$PROD_URL")"

# 16. A scheduled promotion: build 1.1.0 runs in Development, and its promotion to Staging is
#     asked for three seconds from now. It is SCHEDULED, and starts by itself at its time.
BUILD_11=$(gql 'mutation($integration: ID!, $artifact: String!) {
  createBuild(input: {integrationId: $integration, version: "1.1.0", artifact: $artifact}) {
    ... on Build { id } } }' \
  "$(jq -n --arg i "$INTEGRATION" --arg a "$ARTIFACT" '{integration: $i, artifact: $a}')" \
  | jq -r '.createBuild.id')
deploy_and_wait() {  # BUILD REVISION: deploy to Development, wait until it runs that revision
  gql 'mutation($i: ID!, $b: ID!, $e: ID!) { deploy(input: {integrationId: $i, buildId: $b,
      environmentId: $e}) { __typename } }' \
    "{\"i\": \"$INTEGRATION\", \"b\": \"$1\", \"e\": \"$DEV\"}" >/dev/null
  wait_for 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
      status revision } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$DEV\"}" \
    ".integration.deployment.status == \"ACTIVE\" and .integration.deployment.revision == $2"
}
deploy_and_wait "$BUILD_11" 2
NOT_BEFORE=$(date -u -d '+3 seconds' +%Y-%m-%dT%H:%M:%SZ)
SCHEDULED=$(gql 'mutation($in: PromoteInput!) { promote(input: $in) {
    __typename ... on Promotion { id status notBefore } ... on Error { message } } }' \
  "{\"in\": $(jq -c --arg t "$NOT_BEFORE" '. + {notBefore: $t}' <<<"$PROMOTE")}")
echo "scheduled: $(jq -c '.promote' <<<"$SCHEDULED")"
wait_for 'query($p: ID!) { promotion(id: $p) { status } }' \
  "{\"p\": \"$(jq -r '.promote.id' <<<"$SCHEDULED")\"}" \
  '.promotion.status == "SUCCEEDED" or .promotion.status == "FAILED"'
echo "started by itself: $(gql 'query($p: ID!) { promotion(id: $p) { status events { status } } }' \
  "{\"p\": \"$(jq -r '.promote.id' <<<"$SCHEDULED")\"}" | jq -c '.promotion')"

# 17. Verification: Staging checks that a new instance answers GET / with 200, three times,
#     0.2 s apart, before its change succeeds; a change that fails is rolled back by itself.
STAGING_DEPLOYMENT=$(gql 'query($i: ID!, $e: ID!) { integration(id: $i) {
    deployment(environmentId: $e) { id } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$STAGING\"}" \
  | jq -r '.integration.deployment.id')
gql 'mutation($d: ID!) { setVerification(input: {deploymentId: $d, attempts: 3,
    intervalSeconds: 0.2, checks: [{name: "answers", path: "/", expectStatus: 200}]}) {
    ... on Deployment { verification { attempts checks { name path expectStatus } } } } }' \
  "{\"d\": \"$STAGING_DEPLOYMENT\"}" | jq -c '.setVerification'

# 18. Build 2.0.0 is broken: healthy, but GET / answers 500. Development has no checks, so it
#     runs there; promoted to Staging it goes live, fails its checks and is rolled back.
BROKEN=$(gql 'mutation($integration: ID!, $artifact: String!) {
  createBuild(input: {integrationId: $integration, version: "2.0.0", artifact: $artifact}) {
    ... on Build { id } } }' \
  "$(jq -n --arg i "$INTEGRATION" --arg a "env GREETER_FAIL=broken $ARTIFACT" \
     '{integration: $i, artifact: $a}')" | jq -r '.createBuild.id')
deploy_and_wait "$BROKEN" 3
BAD=$(gql 'mutation($in: PromoteInput!) { promote(input: $in) { ... on Promotion { id } } }' \
  "{\"in\": $PROMOTE}" | jq -r '.promote.id')
wait_for 'query($p: ID!) { promotion(id: $p) { status } }' "{\"p\": \"$BAD\"}" \
  '.promotion.status == "SUCCEEDED" or .promotion.status == "FAILED"'
echo "verified: $(gql 'query($p: ID!) { promotion(id: $p) { status error events { status } } }' \
  "{\"p\": \"$BAD\"}" | jq -c '.promotion')"
wait_for 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    status revision } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$STAGING\"}" \
  '.integration.deployment.status == "ACTIVE" and .integration.deployment.revision == 4'
echo "staging history: $(gql 'query($i: ID!, $e: ID!) { integration(id: $i) {
    deployment(environmentId: $e) { history(first: 2) { edges { node { revision cause reason
    build { version } } } } verifications(first: 2) { revision passed } } } }' \
  "{\"i\": \"$INTEGRATION\", \"e\": \"$STAGING\"}" | jq -c '.integration.deployment')"
echo "staging answers again: $(curl -sS "$STAGING_URL")"

# 19. A configuration group: the organization's "tuning" keys with a value per environment,
#     linked to the greeter. Its deployments run their own values over the group's; setting
#     Staging's value with restart restarts Staging (one change, verified as any other).
TUNING=$(gql 'mutation($org: ID!) { createConfigurationGroup(input: {organizationId: $org,
    name: "tuning", keys: [{key: "REPEAT"}]}) { ... on ConfigurationGroup { id } } }' \
  "{\"org\": \"$ORG\"}" | jq -r '.createConfigurationGroup.id')
gql 'mutation($g: ID!, $i: ID!) { linkConfigurationGroup(input: {groupId: $g, integrationId: $i}) {
    __typename } }' "{\"g\": \"$TUNING\", \"i\": \"$INTEGRATION\"}" >/dev/null
echo "group set: $(gql 'mutation($g: ID!, $e: ID!) { setConfigurationGroupValues(input: {groupId: $g,
    environmentId: $e, entries: [{key: "REPEAT", value: "3"}], restart: true}) {
    ... on ConfigurationGroupValuesSet { group { name values { key value } } restarted { id } } } }' \
  "{\"g\": \"$TUNING\", \"e\": \"$STAGING\"}" | jq -c '.setConfigurationGroupValues')"
wait_for 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    status revision } } }' "{\"i\": \"$INTEGRATION\", \"e\": \"$STAGING\"}" \
  '.integration.deployment.status == "ACTIVE" and .integration.deployment.revision == 5'
echo "staging answers with the group: $(curl -sS "$STAGING_URL")"

# 20. A release: the greeter depends on a second integration, the ledger (the same program),
#     and both go from Development to Staging together, the ledger first. Development runs
#     the greeter's 1.1.0 again (2.0.0 is the broken one).
deploy_and_wait "$BUILD_11" 4
LEDGER=$(gql 'mutation($project: ID!) { createIntegration(input: {projectId: $project,
    name: "Ledger", configSchema: [{key: "GREETING", type: STRING, required: true}]}) {
    ... on Integration { id } } }' "{\"project\": \"$PROJECT\"}" | jq -r '.createIntegration.id')
LEDGER_BUILD=$(gql 'mutation($i: ID!, $a: String!) { createBuild(input: {integrationId: $i,
    version: "1.0.0", artifact: $a}) { ... on Build { id } } }' \
  "$(jq -n --arg i "$LEDGER" --arg a "$ARTIFACT" '{i: $i, a: $a}')" | jq -r '.createBuild.id')
gql 'mutation($i: ID!, $b: ID!, $e: ID!) { deploy(input: {integrationId: $i, buildId: $b,
    environmentId: $e, configuration: [{key: "GREETING", value: "Ledger in Development"}]}) {
    __typename } }' "{\"i\": \"$LEDGER\", \"b\": \"$LEDGER_BUILD\", \"e\": \"$DEV\"}" >/dev/null
wait_for 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    status } } }' "{\"i\": \"$LEDGER\", \"e\": \"$DEV\"}" '.integration.deployment.status == "ACTIVE"'
gql 'mutation($i: ID!, $on: [ID!]!) { setIntegrationDependencies(integrationId: $i,
    dependsOn: $on) { __typename } }' "{\"i\": \"$INTEGRATION\", \"on\": [\"$LEDGER\"]}" >/dev/null
RELEASE=$(gql 'mutation($in: CreateReleaseInput!) { createRelease(input: $in) {
    ... on Release { id status } ... on Error { message } } }' \
  "$(jq -n --arg g "$INTEGRATION" --arg l "$LEDGER" --arg d "$DEV" '{in: {name: "winter",
    sourceEnvironmentId: $d, members: [{integrationId: $g}, {integrationId: $l,
    overrides: [{key: "GREETING", value: "Ledger in Staging"}]}]}}')" \
  | jq -r '.createRelease.id')
wait_for 'query($r: ID!) { release(id: $r) { status } }' "{\"r\": \"$RELEASE\"}" \
  '.release.status == "SUCCEEDED" or .release.status == "FAILED"'
echo "released: $(gql 'query($r: ID!) { release(id: $r) { name status members {
    integration { name } build { version } promotion { status } } } }' "{\"r\": \"$RELEASE\"}" \
  | jq -c '.release')"
LEDGER_URL=$(gql 'query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    endpointUrl } } }' "{\"i\": \"$LEDGER\", \"e\": \"$STAGING\"}" \
  | jq -r '.integration.deployment.endpointUrl')
echo "ledger answers in staging: $(curl -sS "$LEDGER_URL")"
