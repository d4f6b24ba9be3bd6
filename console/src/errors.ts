// What a person reads when a mutation answers with one of the contract's error types instead
// of its object: one sentence for the form, and the fields it names, so that a form can show
// each next to its input.
import type { PromotionBlocker } from './api/types';

export interface Problem {
  __typename:
    | 'ValidationError'
    | 'NotFoundError'
    | 'ForbiddenError'
    | 'ConflictError'
    | 'MissingConfigurationError'
    | 'PromotionBlockedError';
  code: string;
  message: string;
  field?: string | null;
  id?: string | null;
  missingKeys?: string[];
  environment?: { id: string; name: string };
  blockers?: PromotionBlocker[];
}

/** An error as a form shows it: a summary, and messages for named fields. */
export interface Shown {
  summary: string;
  fields: Record<string, string>;
}

const PROBLEM_TYPES: ReadonlySet<string> = new Set([
  'ValidationError',
  'NotFoundError',
  'ForbiddenError',
  'ConflictError',
  'MissingConfigurationError',
  'PromotionBlockedError',
]);

export function isProblem(result: { __typename?: string }): result is Problem {
  return result.__typename !== undefined && PROBLEM_TYPES.has(result.__typename);
}

export const BLOCKER_TEXT: Record<PromotionBlocker, string> = {
  SOURCE_NOT_ACTIVE: 'The integration is not running in the source environment.',
  NOT_NEXT_ENVIRONMENT:
    'Promotions move one environment at a time: this is not the next environment of the pipeline.',
  ENVIRONMENT_NOT_IN_PIPELINE: "This environment is not in the project's pipeline.",
  TARGET_FROZEN: 'The target environment is frozen.',
  MISSING_CONFIGURATION: 'The target environment is missing required configuration values.',
  REQUEST_ALREADY_PENDING: 'A request for this environment is already waiting or in progress.',
  NOT_SOAKED: 'The build has not run long enough in the source environment yet (soak time).',
};

/** Blockers in a sentence each; an unknown one (a newer API) by its name. */
export function describeBlockers(blockers: readonly string[]): string[] {
  return blockers.map((blocker) => BLOCKER_TEXT[blocker as PromotionBlocker] ?? blocker);
}

/**
 * ``fieldFor`` maps the API's field path (``overrides[1].value``, ``reason``) to the form's own
 * field name; without it the path is the name. Missing keys are fields named by the key.
 */
export function showProblem(
  problem: Problem,
  fieldFor: (path: string) => string | undefined = (path) => path,
): Shown {
  switch (problem.__typename) {
    case 'ValidationError': {
      const field = problem.field ? fieldFor(problem.field) : undefined;
      return field
        ? { summary: 'Please correct the highlighted field.', fields: { [field]: sentence(problem.message) } }
        : { summary: sentence(problem.message), fields: {} };
    }
    case 'NotFoundError':
      return {
        summary: 'It no longer exists, or you are not allowed to see it. Reload the page.',
        fields: {},
      };
    case 'ForbiddenError':
      return { summary: `Your role does not allow this: ${problem.message}.`, fields: {} };
    case 'ConflictError':
      return { summary: sentence(problem.message), fields: {} };
    case 'MissingConfigurationError': {
      const keys = problem.missingKeys ?? [];
      const where = problem.environment?.name ?? 'the target environment';
      return {
        summary: `Set ${keys.length === 1 ? 'this value' : 'these values'} for ${where} first: ${keys.join(', ')}.`,
        fields: Object.fromEntries(keys.map((key) => [key, 'Required: set a value.'])),
      };
    }
    case 'PromotionBlockedError':
      return { summary: describeBlockers(problem.blockers ?? []).join(' '), fields: {} };
  }
}

/** The API's messages are lower-case clauses; a form shows sentences. */
export function sentence(message: string): string {
  const trimmed = message.trim();
  if (!trimmed) return 'Something went wrong.';
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** ``entries[2].value`` → the name of the third row's field, as ``rowField`` names it. */
export function entryField(
  list: string,
  rows: readonly string[],
  rowField: (row: string, part: string) => string,
): (path: string) => string | undefined {
  const pattern = new RegExp(`^${list}\\[(\\d+)\\]\\.(\\w+)$`);
  return (path) => {
    const match = pattern.exec(path);
    if (!match) return path;
    const row = rows[Number(match[1])];
    return row === undefined ? undefined : rowField(row, match[2] ?? 'value');
  };
}
