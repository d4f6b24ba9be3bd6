import { describe, expect, it } from 'vitest';

import { describeBlockers, entryField, isProblem, sentence, showProblem, type Problem } from './errors';

describe('showProblem', () => {
  it('puts a validation error next to the field it names', () => {
    const problem: Problem = {
      __typename: 'ValidationError',
      code: 'VALIDATION',
      message: 'must be an integer',
      field: 'overrides[1].value',
    };
    const shown = showProblem(problem, entryField('overrides', ['GREETING', 'PORT'], (key) => key));
    expect(shown.fields).toEqual({ PORT: 'Must be an integer.' });
    expect(shown.summary).toBe('Please correct the highlighted field.');
  });

  it('keeps a validation error without a field as the summary', () => {
    const shown = showProblem({ __typename: 'ValidationError', code: 'VALIDATION', message: 'too long', field: null });
    expect(shown).toEqual({ summary: 'Too long.', fields: {} });
  });

  it('names every missing key, as a field each', () => {
    const shown = showProblem({
      __typename: 'MissingConfigurationError',
      code: 'MISSING_CONFIGURATION',
      message: 'missing',
      missingKeys: ['GREETING', 'API_KEY'],
      environment: { id: 'env_1', name: 'Production' },
    });
    expect(shown.summary).toBe('Set these values for Production first: GREETING, API_KEY.');
    expect(Object.keys(shown.fields)).toEqual(['GREETING', 'API_KEY']);
  });

  it('explains blockers in words, and an unknown one by its name', () => {
    expect(describeBlockers(['TARGET_FROZEN', 'SOMETHING_NEW'])).toEqual([
      'The target environment is frozen.',
      'SOMETHING_NEW',
    ]);
    const shown = showProblem({
      __typename: 'PromotionBlockedError',
      code: 'PROMOTION_BLOCKED',
      message: 'blocked',
      blockers: ['NOT_NEXT_ENVIRONMENT'],
    });
    expect(shown.summary).toMatch(/one environment at a time/);
  });

  it('says what a forbidden request lacked', () => {
    const shown = showProblem({ __typename: 'ForbiddenError', code: 'FORBIDDEN', message: 'requires the ADMIN role' });
    expect(shown.summary).toBe('Your role does not allow this: requires the ADMIN role.');
  });
});

describe('isProblem', () => {
  it('tells the error types from the objects', () => {
    expect(isProblem({ __typename: 'ConflictError' })).toBe(true);
    expect(isProblem({ __typename: 'Promotion' })).toBe(false);
    expect(isProblem({})).toBe(false);
  });
});

describe('entryField', () => {
  const field = entryField('entries', ['A', 'B'], (key, part) => `${key}.${part}`);
  it('maps a row path to the row', () => expect(field('entries[0].key')).toBe('A.key'));
  it('leaves another path as it is', () => expect(field('restart')).toBe('restart'));
  it('drops a row the form does not have', () => expect(field('entries[5].value')).toBeUndefined());
});

describe('sentence', () => {
  it('capitalises and ends with a full stop', () => expect(sentence('bad value')).toBe('Bad value.'));
  it('keeps an ending it already has', () => expect(sentence('Why?')).toBe('Why?'));
  it('has something to say for an empty message', () => expect(sentence('  ')).toBe('Something went wrong.'));
});
