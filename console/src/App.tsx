// The console: sign-in, then the organization's pages under one header.
import { useEffect, useMemo, useState } from 'preact/hooks';

import { Api, endpointFor, Unauthenticated } from './api/client';
import { VIEWER } from './api/documents';
import type { Viewer } from './api/types';
import { ApprovalsPage } from './components/ApprovalsPage';
import { AuditPage } from './components/AuditPage';
import { EnvironmentsPage } from './components/EnvironmentsPage';
import { PipelinePage } from './components/PipelinePage';
import { ProjectsPage } from './components/ProjectsPage';
import { SignIn } from './components/SignIn';
import { Loading } from './components/ui';
import { SessionContext, useRoute, useSession } from './hooks';
import { formatRoute, type Route } from './route';
import { forgetToken, saveToken, savedToken } from './session';

export function App(): preact.JSX.Element {
  const [token, setToken] = useState<string | null>(() => savedToken());
  const [viewer, setViewer] = useState<Viewer | null>(null);
  const [problem, setProblem] = useState<string | undefined>();
  const endpoint = endpointFor(window.location);

  const signOut = (message?: string): void => {
    forgetToken();
    setToken(null);
    setViewer(null);
    setProblem(message);
  };
  const api = useMemo(
    () =>
      token === null
        ? null
        : new Api(token, endpoint, () => signOut('The token was refused or revoked: sign in again.')),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [token],
  );
  useEffect(() => () => api?.close(), [api]);

  useEffect(() => {
    if (api === null) return;
    let current = true;
    api.request<{ viewer: Viewer }>(VIEWER).then(
      (data) => {
        if (!current) return;
        if (token !== null) saveToken(token);
        setViewer(data.viewer);
        setProblem(undefined);
      },
      (error: unknown) => {
        if (!current) return;
        if (error instanceof Unauthenticated) signOut('That token was not accepted.');
        else setProblem(error instanceof Error ? error.message : String(error));
      },
    );
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api]);

  if (api === null || viewer === null) {
    if (api !== null && problem === undefined) return <Loading what="your account" />;
    return <SignIn onToken={setToken} problem={problem} checking={api !== null && problem === undefined} />;
  }
  return (
    <SessionContext.Provider value={{ api, viewer, signOut: () => signOut() }}>
      <Console />
    </SessionContext.Provider>
  );
}

function Console(): preact.JSX.Element {
  const { viewer, signOut } = useSession();
  const route = useRoute();
  const first = viewer.memberships[0]?.organization.slug;
  const org = route.page === 'home' ? first : route.org;

  useEffect(() => {
    if (route.page === 'home' && first) window.location.replace(formatRoute({ page: 'projects', org: first }));
  }, [route.page, first]);

  const membership = viewer.memberships.find((m) => m.organization.slug === org);
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={org ? formatRoute({ page: 'projects', org }) : '#/'}>
          Promenade
        </a>
        {membership ? <Navigation org={membership.organization.slug} route={route} admin={membership.role === 'ADMIN'} /> : null}
        <div class="account">
          {viewer.memberships.length > 1 ? (
            <label class="org-switcher">
              <span>Organization</span>
              <select
                value={org}
                onChange={(event) =>
                  window.location.assign(formatRoute({ page: 'projects', org: event.currentTarget.value }))
                }
              >
                {viewer.memberships.map((m) => (
                  <option key={m.organization.id} value={m.organization.slug}>
                    {m.organization.name}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
          <span class="who" title={viewer.user.email}>
            {viewer.user.email}
            {membership ? <span class="role"> · {membership.role.toLowerCase()}</span> : null}
          </span>
          <button type="button" class="button-quiet" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {membership ? (
          <Page route={route} />
        ) : (
          <p role="alert">
            {viewer.memberships.length === 0
              ? 'You belong to no organization yet: ask an admin to add you.'
              : 'You are not a member of that organization.'}
          </p>
        )}
      </main>
    </>
  );
}

function Navigation(props: { org: string; route: Route; admin: boolean }): preact.JSX.Element {
  const pages: { page: 'projects' | 'approvals' | 'environments' | 'audit'; label: string }[] = [
    { page: 'projects', label: 'Projects' },
    { page: 'approvals', label: 'Approvals' },
    { page: 'environments', label: 'Environments' },
    ...(props.admin ? [{ page: 'audit' as const, label: 'Audit log' }] : []),
  ];
  const current = props.route.page === 'project' ? 'projects' : props.route.page;
  return (
    <nav aria-label="Console">
      <ul>
        {pages.map(({ page, label }) => (
          <li key={page}>
            <a href={formatRoute({ page, org: props.org })} aria-current={current === page ? 'page' : undefined}>
              {label}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

function Page(props: { route: Route }): preact.JSX.Element | null {
  const { route } = props;
  switch (route.page) {
    case 'home':
      return null;
    case 'projects':
      return <ProjectsPage org={route.org} />;
    case 'project':
      return <PipelinePage org={route.org} projectId={route.projectId} integrationId={route.integrationId} />;
    case 'approvals':
      return <ApprovalsPage org={route.org} />;
    case 'environments':
      return <EnvironmentsPage org={route.org} />;
    case 'audit':
      return <AuditPage org={route.org} />;
  }
}
