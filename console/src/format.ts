// How the console words and orders the API's values.
import type {
  ConfigChange,
  Deployment,
  DeploymentStatus,
  Environment,
  OpenRequest,
  PromotionStatus,
  Role,
} from './api/types';

export const DEPLOYMENT_STATUS: Record<DeploymentStatus, string> = {
  NOT_DEPLOYED: 'Not deployed',
  IN_PROGRESS: 'In progress',
  ACTIVE: 'Active',
  SUSPENDED: 'Suspended',
  ERROR: 'Error',
};

export const PROMOTION_STATUS: Record<PromotionStatus, string> = {
  PENDING_APPROVAL: 'Waiting for approval',
  SCHEDULED: 'Scheduled',
  QUEUED: 'Queued',
  APPLYING_CONFIGURATION: 'Applying configuration',
  RESTARTING: 'Restarting',
  VERIFYING: 'Verifying',
  SUCCEEDED: 'Succeeded',
  FAILED: 'Failed',
  REJECTED: 'Rejected',
  CANCELLED: 'Cancelled',
  EXPIRED: 'Expired',
  SUPERSEDED: 'Superseded',
};

const FINISHED: ReadonlySet<PromotionStatus> = new Set([
  'SUCCEEDED',
  'FAILED',
  'REJECTED',
  'CANCELLED',
  'EXPIRED',
  'SUPERSEDED',
]);

/** A promotion in one of these statuses sends no more events. */
export function isFinished(status: PromotionStatus): boolean {
  return FINISHED.has(status);
}

/** The masked text shown wherever a secret's value would be. */
export const MASK = '••••••';

/** A configuration change as a row: secrets masked whatever the API sent. */
export function changeRow(change: ConfigChange): { key: string; before: string; after: string } {
  const show = (value: string | null, present: boolean): string =>
    !present ? '—' : change.secret ? MASK : (value ?? '—');
  return {
    key: change.key,
    before: show(change.before, change.kind !== 'ADDED'),
    after: show(change.after, change.kind !== 'REMOVED'),
  };
}

/** The environment after ``environmentId`` in the pipeline, if any. */
export function nextEnvironment(
  pipeline: readonly Environment[],
  environmentId: string,
): Environment | undefined {
  const index = pipeline.findIndex((environment) => environment.id === environmentId);
  return index < 0 ? undefined : pipeline[index + 1];
}

export function deploymentIn(
  deployments: readonly Deployment[],
  environmentId: string,
): Deployment | undefined {
  return deployments.find((deployment) => deployment.environment.id === environmentId);
}

const WRITERS: ReadonlySet<Role> = new Set(['ADMIN', 'DEVELOPER']);

/** Deploy, configure, restart, promote: what ADMIN and DEVELOPER may do. */
export function canChange(role: Role | undefined): boolean {
  return role !== undefined && WRITERS.has(role);
}

export function when(iso: string, now: Date = new Date()): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const seconds = Math.round((now.getTime() - at.getTime()) / 1000);
  if (seconds < 0) return at.toLocaleString();
  if (seconds < 60) return 'just now';
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return at.toLocaleString();
}

/** An audit entry's detail as "key: value" pairs, lists joined, nested values as JSON. */
export function detailText(detail: unknown): string {
  if (detail === null || detail === undefined) return '';
  if (typeof detail !== 'object' || Array.isArray(detail)) return JSON.stringify(detail);
  return Object.entries(detail as Record<string, unknown>)
    .map(([key, value]) => {
      const shown = Array.isArray(value)
        ? value.map((item) => (typeof item === 'string' ? item : JSON.stringify(item))).join(', ') || '—'
        : typeof value === 'string'
          ? value
          : JSON.stringify(value);
      return `${key}: ${shown}`;
    })
    .join('; ');
}

/** An endpoint URL as a link only when it is http(s): a data plane reports it, and a link to
 * ``javascript:`` or ``data:`` would run in the console's origin. */
export function safeLink(url: string | null): string | null {
  if (url === null) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.href : null;
  } catch {
    return null;
  }
}

/** How long until the cards are read again without an event, if at all. */
export function pollDelay(deployments: readonly Deployment[], requests: readonly OpenRequest[]): number | null {
  const waiting: ReadonlySet<PromotionStatus> = new Set(['PENDING_APPROVAL', 'SCHEDULED']);
  if (deployments.some((d) => d.status === 'IN_PROGRESS') || requests.some((r) => !waiting.has(r.status))) {
    return 3000;
  }
  return requests.length > 0 ? 30000 : null;
}

