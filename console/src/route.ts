// Where the console is, kept in the URL's fragment so that every page can be bookmarked and
// reloaded (the server serves one page at /): #/<org>/projects, #/<org>/projects/<id>,
// #/<org>/approvals, #/<org>/environments, #/<org>/audit.

export type Route =
  | { page: 'projects'; org: string }
  | { page: 'project'; org: string; projectId: string; integrationId?: string }
  | { page: 'approvals'; org: string }
  | { page: 'environments'; org: string }
  | { page: 'audit'; org: string }
  | { page: 'home' };

const SIMPLE = new Set(['projects', 'approvals', 'environments', 'audit']);

export function parseRoute(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter(Boolean)
    .map((part) => decodeURIComponent(part));
  const [org, page, id, integrationId] = parts;
  if (!org) return { page: 'home' };
  if (page === 'projects' && id) {
    return integrationId
      ? { page: 'project', org, projectId: id, integrationId }
      : { page: 'project', org, projectId: id };
  }
  if (page && SIMPLE.has(page) && !id) {
    return { page: page as 'projects' | 'approvals' | 'environments' | 'audit', org };
  }
  return { page: 'projects', org };
}

export function formatRoute(route: Route): string {
  const encode = (part: string): string => encodeURIComponent(part);
  switch (route.page) {
    case 'home':
      return '#/';
    case 'project':
      return `#/${encode(route.org)}/projects/${encode(route.projectId)}${
        route.integrationId ? `/${encode(route.integrationId)}` : ''
      }`;
    default:
      return `#/${encode(route.org)}/${route.page}`;
  }
}
