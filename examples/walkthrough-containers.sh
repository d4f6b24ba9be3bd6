#!/usr/bin/env bash
# The README's walk-through with containers, runnable: against a running `promenade up` on a
# machine whose Docker Engine answers, it creates a CONTAINER data plane, two environments on it
# (Test and Live) and a pipeline through them, a project and an integration with a secret, a
# build whose artifact is the greeter's image, deploys it to Test, promotes it to Live with
# Live's own values, calls both endpoints and reads Live's logs through the API.
#
#   docker build -t greeter:1.0.0 examples/greeter
#   TOKEN=<the token `promenade up` printed> examples/walkthrough-containers.sh
#
# IMAGE names another image of the greeter (default greeter:1.0.0).
set -euo pipefail
URL=${PROMENADE_URL:-http://127.0.0.1:8000}
IMAGE=${IMAGE:-greeter:1.0.0}
: "${TOKEN:?set TOKEN to the API token that promenade up printed}"

# gql and wait_for: one GraphQL request, and waiting for a condition.
# shellcheck source=examples/gql.sh
source "$(dirname "${BASH_SOURCE[0]}")/gql.sh"

ORG=$(gql '{ organization(slug: "default") { id } }' | jq -r '.organization.id')

# 1. A CONTAINER data plane: each instance a container of the Docker Engine, with these limits.
PLANE=$(gql 'mutation($org: ID!) { createDataPlane(input: {organizationId: $org,
    name: "containers", runtime: CONTAINER, settings: {memoryMb: 128, cpus: 0.5}}) {
    __typename ... on DataPlane { id name runtime } ... on Error { message } } }' \
  "{\"org\": \"$ORG\"}" | jq -r '.createDataPlane.id')
echo "data plane: $PLANE"

# 2. Two environments on it, and a pipeline Test -> Live.
environment() {
  gql 'mutation($org: ID!, $plane: ID!, $name: String!, $prefix: String!) {
    createEnvironment(input: {organizationId: $org, name: $name, dnsPrefix: $prefix,
                              dataPlaneId: $plane}) { ... on Environment { id } } }' \
    "$(jq -n --arg org "$ORG" --arg plane "$PLANE" --arg name "$1" --arg prefix "$2" \
      '{org: $org, plane: $plane, name: $name, prefix: $prefix}')" \
    | jq -r '.createEnvironment.id'
}
TEST=$(environment Test test)
LIVE=$(environment Live live)
PIPELINE=$(gql 'mutation($org: ID!, $envs: [ID!]!) { createPipeline(input: {
    organizationId: $org, name: "Containers", environmentIds: $envs}) {
    ... on DeploymentPipeline { id } } }' \
  "{\"org\": \"$ORG\", \"envs\": [\"$TEST\", \"$LIVE\"]}" | jq -r '.createPipeline.id')

# 3. A project on that pipeline, an integration, and a build: the image is the artifact.
PROJECT=$(gql 'mutation($org: ID!, $pipeline: ID!) { createProject(input: {
    organizationId: $org, name: "Shop", pipelineId: $pipeline}) { ... on Project { id } } }' \
  "{\"org\": \"$ORG\", \"pipeline\": \"$PIPELINE\"}" | jq -r '.createProject.id')
INTEGRATION=$(gql 'mutation($project: ID!) { createIntegration(input: {projectId: $project,
    name: "Greeter", configSchema: [{key: "GREETING"}, {key: "API_KEY", secret: true}]}) {
    ... on Integration { id } } }' "{\"project\": \"$PROJECT\"}" \
  | jq -r '.createIntegration.id')
BUILD=$(gql 'mutation($integration: ID!, $image: String!) { createBuild(input: {
    integrationId: $integration, version: "1.0.0", artifact: $image}) {
    __typename ... on Build { id artifact } ... on Error { message } } }' \
  "$(jq -n --arg i "$INTEGRATION" --arg a "$IMAGE" '{integration: $i, image: $a}')" \
  | jq -r '.createBuild.id')
echo "build: $BUILD ($IMAGE)"

# 4. Deploy to Test with Test's values: the secret reaches the container as a file only.
gql 'mutation($in: DeployInput!) { deploy(input: $in) {
    __typename ... on Deployment { status } ... on Error { message } } }' \
  "{\"in\": {\"integrationId\": \"$INTEGRATION\", \"buildId\": \"$BUILD\",
    \"environmentId\": \"$TEST\", \"configuration\": [
      {\"key\": \"GREETING\", \"value\": \"Hello from a container\"},
      {\"key\": \"API_KEY\", \"value\": \"test-container-secret\"}]}}" | jq -c '.deploy'
DEPLOYMENT='query($i: ID!, $e: ID!) { integration(id: $i) { deployment(environmentId: $e) {
    id status endpointUrl lastError } } }'
wait_for "$DEPLOYMENT" "{\"i\": \"$INTEGRATION\", \"e\": \"$TEST\"}" \
  '.integration.deployment.status == "ACTIVE"'
TEST_URL=$(gql "$DEPLOYMENT" "{\"i\": \"$INTEGRATION\", \"e\": \"$TEST\"}" \
  | jq -r '.integration.deployment.endpointUrl')
echo "test answers: $(curl -sS "$TEST_URL")"

# 5. Promote the same image to Live with Live's own values.
PROMOTION=$(gql 'mutation($in: PromoteInput!) { promote(input: $in) {
    __typename ... on Promotion { id } ... on Error { message } } }' \
  "{\"in\": {\"integrationId\": \"$INTEGRATION\", \"sourceEnvironmentId\": \"$TEST\",
    \"overrides\": [{\"key\": \"GREETING\", \"value\": \"Hello from Live\"},
                    {\"key\": \"API_KEY\", \"value\": \"live-container-secret\"}]}}" \
  | jq -r '.promote.id')
wait_for 'query($p: ID!) { promotion(id: $p) { status } }' "{\"p\": \"$PROMOTION\"}" \
  '.promotion.status == "SUCCEEDED" or .promotion.status == "FAILED"'
gql 'query($p: ID!) { promotion(id: $p) { status error } }' "{\"p\": \"$PROMOTION\"}" \
  | jq -c '.promotion'
LIVE_DEPLOYMENT=$(gql "$DEPLOYMENT" "{\"i\": \"$INTEGRATION\", \"e\": \"$LIVE\"}")
LIVE_URL=$(jq -r '.integration.deployment.endpointUrl' <<<"$LIVE_DEPLOYMENT")
echo "live answers: $(curl -sS "$LIVE_URL")"
echo "test answers: $(curl -sS "$TEST_URL")"

# 6. Live's output, read from the data plane through the API (no access to the engine needed).
gql 'query($id: ID!) { deployment(id: $id) { logs(lines: 20) } }' \
  "{\"id\": \"$(jq -r '.integration.deployment.id' <<<"$LIVE_DEPLOYMENT")\"}" \
  | jq -r '.deployment.logs[]' | sed 's/^/live log: /'
