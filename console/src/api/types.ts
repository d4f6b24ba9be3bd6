// The parts of the API's types (schema.graphql) that the console selects. Each mutation's
// result is a union of the object and the contract's error types: see errors.ts.

export type Role = 'ADMIN' | 'DEVELOPER' | 'APPROVER' | 'VIEWER';
export type DeploymentStatus = 'NOT_DEPLOYED' | 'IN_PROGRESS' | 'ACTIVE' | 'SUSPENDED' | 'ERROR';
export type PromotionStatus =
  | 'PENDING_APPROVAL'
  | 'SCHEDULED'
  | 'QUEUED'
  | 'APPLYING_CONFIGURATION'
  | 'RESTARTING'
  | 'VERIFYING'
  | 'SUCCEEDED'
  | 'FAILED'
  | 'REJECTED'
  | 'CANCELLED'
  | 'EXPIRED'
  | 'SUPERSEDED';
export type PromotionBlocker =
  | 'SOURCE_NOT_ACTIVE'
  | 'NOT_NEXT_ENVIRONMENT'
  | 'ENVIRONMENT_NOT_IN_PIPELINE'
  | 'TARGET_FROZEN'
  | 'MISSING_CONFIGURATION'
  | 'REQUEST_ALREADY_PENDING'
  | 'NOT_SOAKED';
export type ConfigChangeKind = 'ADDED' | 'CHANGED' | 'REMOVED' | 'UNCHANGED';

export interface User {
  id: string;
  name: string;
  email: string;
}

export interface Membership {
  role: Role;
  organization: { id: string; slug: string; name: string };
}

export interface Viewer {
  user: User;
  memberships: Membership[];
}

export interface Environment {
  id: string;
  name: string;
  position: number;
  critical: boolean;
  frozen: boolean;
  freezeReason: string | null;
  approvalPolicy: { requiredApprovals: number } | null;
}

export interface Build {
  id: string;
  version: string;
  commit: string | null;
  createdAt: string;
}

export interface ConfigValue {
  key: string;
  /** Always null for a secret: the API never returns a secret's value. */
  value: string | null;
  secret: boolean;
}

export interface ConfigKey {
  key: string;
  type: string;
  required: boolean;
  secret: boolean;
  defaultValue: string | null;
  description: string | null;
}

export interface Deployment {
  id: string;
  status: DeploymentStatus;
  revision: number;
  endpointUrl: string | null;
  restartRequired: boolean;
  lastError: string | null;
  updatedAt: string;
  missingConfiguration: string[];
  build: Build | null;
  environment: { id: string };
  configuration: ConfigValue[];
}

export interface Integration {
  id: string;
  name: string;
  slug: string;
  configSchema: ConfigKey[];
  deployments: Deployment[];
  builds: { edges: { node: Build }[] };
  promotions: { edges: { node: OpenRequest }[] };
}

/** A request (promotion, deploy, restart, ...) of an integration that has not ended yet. */
export interface OpenRequest {
  id: string;
  status: PromotionStatus;
  kind: string;
  build: { version: string };
  targetEnvironment: { id: string };
}

export interface Project {
  id: string;
  name: string;
  slug: string;
  description: string | null;
}

export interface ProjectDetail extends Project {
  organization: { id: string; slug: string };
  pipeline: { id: string; name: string; environments: Environment[] };
  integrations: { edges: { node: Integration }[] };
}

export interface ConfigChange {
  key: string;
  secret: boolean;
  before: string | null;
  after: string | null;
  kind: ConfigChangeKind;
}

export interface PromotionPlan {
  build: Build | null;
  missingConfiguration: string[];
  configurationChanges: ConfigChange[];
  requiresApproval: boolean;
  blockers: PromotionBlocker[];
  soakedAt: string | null;
}

export interface PromotionEvent {
  promotionId: string;
  status: PromotionStatus;
  at: string;
  detail: string | null;
}

export interface ApprovalRuleProgress {
  rule: { name: string; requiredApprovals: number; approverRoles: Role[] };
  approvals: number;
  met: boolean;
  approvedBy: { name: string }[];
}

export interface Promotion {
  __typename?: 'Promotion';
  id: string;
  status: PromotionStatus;
  kind: string;
  /** The requester's message (aliased: an error's `message` is non-null). */
  note: string | null;
  requestedAt: string;
  requiredApprovals: number;
  error: string | null;
  integration: { id: string; name: string; project: { id: string; name: string } };
  build: { version: string };
  sourceEnvironment: { id: string; name: string };
  targetEnvironment: { id: string; name: string };
  requestedBy: User;
  reviews: { decision: string; comment: string | null; reviewer: User }[];
  approvalRules: ApprovalRuleProgress[];
  configurationChanges: ConfigChange[];
}

export interface DeploymentRevision {
  revision: number;
  cause: string;
  reason: string | null;
  createdAt: string;
  build: { version: string };
  actor: { name: string } | null;
}

export interface AuditEvent {
  id: string;
  action: string;
  subjectId: string;
  detail: unknown;
  at: string;
  actor: { name: string; email: string } | null;
}

export interface PageInfo {
  hasNextPage: boolean;
  endCursor: string | null;
}

export interface DeploymentEvent {
  deploymentId: string;
  integrationId: string;
  environmentId: string;
  status: DeploymentStatus;
  revision: number;
  endpointUrl: string | null;
  at: string;
  detail: string | null;
}
