// The console's data hooks: a query that reloads on demand, a subscription for as long as a
// component shows it, and the route in the URL's fragment.
import { createContext } from 'preact';
import { useContext, useEffect, useRef, useState } from 'preact/hooks';

import type { Api, Variables } from './api/client';
import type { Role, Viewer } from './api/types';
import { parseRoute, type Route } from './route';

export interface Session {
  api: Api;
  viewer: Viewer;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (session === null) throw new Error('useSession outside a signed-in console');
  return session;
}

/** The viewer's role in the organization of slug ``org``. */
export function useRole(org: string): Role | undefined {
  const { viewer } = useSession();
  return viewer.memberships.find((membership) => membership.organization.slug === org)?.role;
}

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

export function useQuery<T>(query: string, variables: Variables): Loaded<T> {
  const { api } = useSession();
  const key = JSON.stringify(variables);
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({
    loading: true,
  });
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true }));
    api.request<T>(query, variables).then(
      (data) => current && setState({ data, loading: false }),
      (error: unknown) =>
        current &&
        setState({ error: error instanceof Error ? error : new Error(String(error)), loading: false }),
    );
    return () => {
      current = false;
    };
    // `key` stands for `variables`, which is a new object on every render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, query, key, version]);
  return {
    data: state.data,
    error: state.error,
    loading: state.loading,
    reload: () => setVersion((value) => value + 1),
  };
}

/** Subscribes while the component is shown, and again when ``variables`` change. */
export function useSubscription<T>(
  query: string,
  variables: Variables | null,
  onData: (data: T) => void,
  onError?: (error: Error) => void,
): void {
  const { api } = useSession();
  const handlers = useRef({ onData, onError });
  handlers.current = { onData, onError };
  const key = variables === null ? null : JSON.stringify(variables);
  useEffect(() => {
    if (variables === null) return undefined;
    return api.subscribe<T>(query, variables, {
      onData: (data) => handlers.current.onData(data),
      onError: (error) => handlers.current.onError?.(error),
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, query, key]);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const changed = (): void => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}
