import { describe, expect, it } from 'vitest';

import { formatRoute, parseRoute, type Route } from './route';

describe('routes', () => {
  const routes: Route[] = [
    { page: 'projects', org: 'default' },
    { page: 'project', org: 'default', projectId: 'prj_1' },
    { page: 'project', org: 'default', projectId: 'prj_1', integrationId: 'int_2' },
    { page: 'approvals', org: 'a b' },
    { page: 'environments', org: 'default' },
    { page: 'audit', org: 'default' },
    { page: 'home' },
  ];
  it.each(routes)('reads back what it wrote: %o', (route) => {
    expect(parseRoute(formatRoute(route))).toEqual(route);
  });

  it('takes an unknown page as the projects', () => {
    expect(parseRoute('#/default/nowhere')).toEqual({ page: 'projects', org: 'default' });
  });

  it('takes an empty fragment as home', () => {
    expect(parseRoute('')).toEqual({ page: 'home' });
    expect(parseRoute('#/')).toEqual({ page: 'home' });
  });
});
