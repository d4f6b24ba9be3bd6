import { describe, expect, it } from 'vitest';

import type { Deployment, Environment, OpenRequest } from './api/types';
import { canChange, changeRow, detailText, isFinished, MASK, nextEnvironment, pollDelay, safeLink, when } from './format';

const environment = (id: string): Environment => ({
  id,
  name: id,
  position: 0,
  critical: false,
  frozen: false,
  freezeReason: null,
  approvalPolicy: null,
});

describe('changeRow', () => {
  it('masks a secret even if a value came with it', () => {
    const row = changeRow({ key: 'API_KEY', secret: true, before: 'leaked', after: 'leaked-too', kind: 'CHANGED' });
    expect(row).toEqual({ key: 'API_KEY', before: MASK, after: MASK });
  });

  it('shows a dash for the side an added or removed key lacks', () => {
    expect(changeRow({ key: 'A', secret: false, before: null, after: 'x', kind: 'ADDED' })).toEqual({
      key: 'A',
      before: '—',
      after: 'x',
    });
    expect(changeRow({ key: 'S', secret: true, before: null, after: null, kind: 'REMOVED' })).toEqual({
      key: 'S',
      before: MASK,
      after: '—',
    });
  });
});

describe('nextEnvironment', () => {
  const pipeline = [environment('dev'), environment('stage'), environment('prod')];
  it('is the following environment', () => expect(nextEnvironment(pipeline, 'stage')?.id).toBe('prod'));
  it('is none after the last', () => expect(nextEnvironment(pipeline, 'prod')).toBeUndefined());
  it('is none for an environment outside the pipeline', () => expect(nextEnvironment(pipeline, 'x')).toBeUndefined());
});

describe('isFinished', () => {
  it('knows the final statuses', () => {
    expect(isFinished('SUCCEEDED')).toBe(true);
    expect(isFinished('SUPERSEDED')).toBe(true);
    expect(isFinished('PENDING_APPROVAL')).toBe(false);
    expect(isFinished('VERIFYING')).toBe(false);
  });
});

describe('canChange', () => {
  it('is for admins and developers', () => {
    expect(canChange('ADMIN')).toBe(true);
    expect(canChange('DEVELOPER')).toBe(true);
    expect(canChange('APPROVER')).toBe(false);
    expect(canChange(undefined)).toBe(false);
  });
});

describe('when', () => {
  const now = new Date('2026-12-04T12:00:00Z');
  it('says how long ago', () => {
    expect(when('2026-12-04T11:59:30Z', now)).toBe('just now');
    expect(when('2026-12-04T11:45:00Z', now)).toBe('15 min ago');
    expect(when('2026-12-04T09:00:00Z', now)).toBe('3 h ago');
  });
  it('keeps what is not a date', () => expect(when('soon', now)).toBe('soon'));
});

describe('detailText', () => {
  it('reads as pairs', () => {
    expect(detailText({ build: '1.1.0', override_keys: ['GREETING', 'API_KEY'], copied_keys: [], revision: 6 })).toBe(
      'build: 1.1.0; override_keys: GREETING, API_KEY; copied_keys: —; revision: 6',
    );
  });
  it('is empty without a detail', () => expect(detailText(null)).toBe(''));
});

describe('safeLink', () => {
  it('keeps http and https', () => {
    expect(safeLink('http://127.0.0.1:8080/default/dev/shop/greeter/')).toBe('http://127.0.0.1:8080/default/dev/shop/greeter/');
    expect(safeLink('https://greeter.example/')).toBe('https://greeter.example/');
  });
  it('refuses what would run or is not a URL', () => {
    expect(safeLink('javascript:alert(1)')).toBeNull();
    expect(safeLink('data:text/html,<script>alert(1)</script>')).toBeNull();
    expect(safeLink('/relative')).toBeNull();
    expect(safeLink(null)).toBeNull();
  });
});

describe('pollDelay', () => {
  const deployment = (status: Deployment['status']): Deployment =>
    ({ status }) as Deployment;
  const request = (status: OpenRequest['status']): OpenRequest =>
    ({ status }) as OpenRequest;
  it('is soon while a change is under way', () => {
    expect(pollDelay([deployment('IN_PROGRESS')], [])).toBe(3000);
    expect(pollDelay([deployment('ACTIVE')], [request('RESTARTING')])).toBe(3000);
  });
  it('is seldom while a request only waits', () => {
    expect(pollDelay([deployment('ACTIVE')], [request('PENDING_APPROVAL')])).toBe(30000);
  });
  it('is never when nothing is open', () => expect(pollDelay([deployment('ACTIVE')], [])).toBeNull());
});
