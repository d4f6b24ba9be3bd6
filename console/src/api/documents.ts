// Every operation the console sends. Mutations select the contract's error types through the
// `Problem` fragment, which errors.ts turns into what a person reads.

export const PROBLEM = `
fragment Problem on Error {
  __typename
  code
  message
  ... on ValidationError { field }
  ... on MissingConfigurationError { missingKeys environment { id name } }
  ... on PromotionBlockedError { blockers }
}`;

const DEPLOYMENT = `
fragment DeploymentCard on Deployment {
  id status revision endpointUrl restartRequired lastError updatedAt missingConfiguration
  build { id version commit createdAt }
  environment { id }
  configuration { key value secret }
}`;

// The requests of an integration that have not ended, shown on their target's card.
const OPEN_STATUSES = `PENDING_APPROVAL, SCHEDULED, QUEUED, APPLYING_CONFIGURATION, RESTARTING, VERIFYING`;

const OPEN_REQUEST = `
fragment OpenRequest on Promotion {
  id status kind build { version } targetEnvironment { id }
}`;

const PROMOTION = `
fragment PromotionSummary on Promotion {
  id status kind note: message requestedAt requiredApprovals error
  integration { id name project { id name } }
  build { version }
  sourceEnvironment { id name }
  targetEnvironment { id name }
  requestedBy { id name email }
  reviews { decision comment reviewer { id name email } }
  approvalRules { rule { name requiredApprovals approverRoles } approvals met approvedBy { name } }
  configurationChanges { key secret before after kind }
}`;

export const VIEWER = `
query Viewer {
  viewer { user { id name email } memberships { role organization { id slug name } } }
}`;

export const PROJECTS = `
query Projects($slug: String!) {
  organization(slug: $slug) {
    id
    projects(first: 100) { edges { node { id name slug description } } }
  }
}`;

export const PROJECT = `
query Project($id: ID!, $open: [PromotionStatus!] = [${OPEN_STATUSES}]) {
  project(id: $id) {
    id name slug description
    organization { id slug }
    pipeline { id name environments { id name position critical frozen freezeReason approvalPolicy { requiredApprovals } } }
    integrations(first: 100) {
      edges { node {
        id name slug
        configSchema { key type required secret defaultValue description }
        deployments { ...DeploymentCard }
        builds(first: 20) { edges { node { id version commit createdAt } } }
        promotions(first: 20, status: $open) { edges { node { ...OpenRequest } } }
      } }
    }
  }
}
${DEPLOYMENT}
${OPEN_REQUEST}`;

export const INTEGRATION_DEPLOYMENTS = `
query IntegrationDeployments($id: ID!, $open: [PromotionStatus!] = [${OPEN_STATUSES}]) {
  integration(id: $id) {
    id
    deployments { ...DeploymentCard }
    builds(first: 20) { edges { node { id version commit createdAt } } }
    promotions(first: 20, status: $open) { edges { node { ...OpenRequest } } }
  }
}
${DEPLOYMENT}
${OPEN_REQUEST}`;

export const DEPLOYMENT_EVENTS = `
subscription DeploymentEvents($integrationId: ID!) {
  deploymentEvents(integrationId: $integrationId) {
    deploymentId integrationId environmentId status revision endpointUrl at detail
  }
}`;

export const PROMOTION_PLAN = `
query PromotionPlan($input: PromoteInput!) {
  promotionPlan(input: $input) {
    build { id version commit createdAt }
    missingConfiguration
    configurationChanges { key secret before after kind }
    requiresApproval
    blockers
    soakedAt
  }
}`;

export const PROMOTE = `
mutation Promote($input: PromoteInput!) {
  promote(input: $input) { __typename ...PromotionSummary ...Problem }
}
${PROMOTION}
${PROBLEM}`;

export const PROMOTION_STATUS = `
subscription PromotionStatus($id: ID!) {
  promotionStatus(id: $id) { promotionId status at detail }
}`;

const DEPLOYMENT_RESULT = `{ __typename ... on Deployment { id } ... on Promotion { id } ...Problem }`;

export const DEPLOY = `
mutation Deploy($input: DeployInput!) { deploy(input: $input) ${DEPLOYMENT_RESULT} }
${PROBLEM}`;

export const SET_CONFIGURATION = `
mutation SetConfiguration($input: SetConfigurationInput!) {
  setConfiguration(input: $input) ${DEPLOYMENT_RESULT}
}
${PROBLEM}`;

export const RESTART = `
mutation Restart($id: ID!) { restartDeployment(id: $id) ${DEPLOYMENT_RESULT} }
${PROBLEM}`;

export const SUSPEND = `
mutation Suspend($id: ID!) { suspendDeployment(id: $id) ${DEPLOYMENT_RESULT} }
${PROBLEM}`;

export const RESUME = `
mutation Resume($id: ID!) { resumeDeployment(id: $id) ${DEPLOYMENT_RESULT} }
${PROBLEM}`;

export const ROLLBACK = `
mutation Rollback($input: RollbackInput!) { rollback(input: $input) ${DEPLOYMENT_RESULT} }
${PROBLEM}`;

export const HISTORY = `
query History($id: ID!) {
  deployment(id: $id) {
    id revision
    history(first: 50) { edges { node { revision cause reason createdAt build { version } actor { name } } } }
  }
}`;

export const PENDING_APPROVALS = `
query PendingApprovals($slug: String!) {
  organization(slug: $slug) {
    id
    pendingApprovals(first: 100) { edges { node { ...PromotionSummary } } }
  }
}
${PROMOTION}`;

export const APPROVAL_REQUESTS = `
subscription ApprovalRequests($organizationId: ID!) {
  approvalRequests(organizationId: $organizationId) { id status }
}`;

export const APPROVE = `
mutation Approve($id: ID!, $comment: String) {
  approvePromotion(id: $id, comment: $comment) { __typename ... on Promotion { id status } ...Problem }
}
${PROBLEM}`;

export const REJECT = `
mutation Reject($id: ID!, $comment: String) {
  rejectPromotion(id: $id, comment: $comment) { __typename ... on Promotion { id status } ...Problem }
}
${PROBLEM}`;

export const ENVIRONMENTS = `
query Environments($slug: String!) {
  organization(slug: $slug) {
    id
    environments { id name position critical frozen freezeReason approvalPolicy { requiredApprovals } }
  }
}`;

export const FREEZE = `
mutation Freeze($id: ID!, $reason: String!) {
  freezeEnvironment(id: $id, reason: $reason) { __typename ... on Environment { id frozen freezeReason } ...Problem }
}
${PROBLEM}`;

export const UNFREEZE = `
mutation Unfreeze($id: ID!) {
  unfreezeEnvironment(id: $id) { __typename ... on Environment { id frozen freezeReason } ...Problem }
}
${PROBLEM}`;

export const AUDIT_LOG = `
query AuditLog($slug: String!, $after: String) {
  organization(slug: $slug) {
    id
    auditLog(first: 50, after: $after) {
      edges { node { id action subjectId detail at actor { name email } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}`;
