#!/usr/bin/env bash
# The README's walk-through, runnable: against a running `promenade up`, it creates Staging,
# a pipeline Development -> Staging -> Production, a project, an integration with a secret,
# a build, sets Development's configuration and reads it back (the secret masked).
#
#   TOKEN=<the token `promenade up` printed> examples/walkthrough.sh
set -euo pipefail
URL=${PROMENADE_URL:-http://127.0.0.1:8000}
: "${TOKEN:?set TOKEN to the API token that promenade up printed}"

# gql QUERY [VARIABLES-JSON]: one GraphQL request; prints the response's data, or fails.
gql() {
  local body response
  body=$(jq -n --arg query "$1" --argjson variables "${2:-{\}}" \
    '{query: $query, variables: $variables}')
  response=$(curl -sS -X POST "$URL/graphql" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d "$body")
  if jq -e '.errors' <<<"$response" >/dev/null; then
    echo "GraphQL error: $response" >&2
    return 1
  fi
  jq '.data' <<<"$response"
}

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

# 5. A build: the same artifact moves unchanged from environment to environment.
gql 'mutation($integration: ID!) {
  createBuild(input: {integrationId: $integration, version: "1.0.0",
                      artifact: "python examples/greeter/app.py", commit: "abc1234"}) {
    ... on Build { version artifact } } }' "{\"integration\": \"$INTEGRATION\"}" \
  | jq -c '.createBuild'

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
echo "staging: $STAGING"
