// The API token, kept for this browser tab's session only (sessionStorage): not in
// localStorage, where it would outlive the session, nor in the URL, where history keeps it.

// The same key as GraphiQL's page (app/graphql/ide_assets): one sign-in per tab serves both.
const KEY = 'promenade.token';

export interface TokenStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export function savedToken(store: TokenStore = sessionStorage): string | null {
  const token = store.getItem(KEY)?.trim();
  return token ? token : null;
}

export function saveToken(token: string, store: TokenStore = sessionStorage): void {
  store.setItem(KEY, token.trim());
}

export function forgetToken(store: TokenStore = sessionStorage): void {
  store.removeItem(KEY);
}
