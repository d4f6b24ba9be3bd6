import { describe, expect, it } from 'vitest';

import { endpointFor, websocketUrl } from './api/client';
import { forgetToken, saveToken, savedToken, type TokenStore } from './session';

function memory(): TokenStore & { items: Map<string, string> } {
  const items = new Map<string, string>();
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

describe('the token', () => {
  it('is kept trimmed and forgotten on sign-out', () => {
    const store = memory();
    saveToken('  prm_abc \n', store);
    expect(savedToken(store)).toBe('prm_abc');
    forgetToken(store);
    expect(savedToken(store)).toBeNull();
    expect(store.items.size).toBe(0);
  });
});

describe('the endpoint', () => {
  it('is /graphql beside the page, behind a path prefix too', () => {
    expect(endpointFor({ origin: 'http://127.0.0.1:8000', pathname: '/' })).toBe('http://127.0.0.1:8000/graphql');
    expect(endpointFor({ origin: 'https://ops.example', pathname: '/promenade/' })).toBe(
      'https://ops.example/promenade/graphql',
    );
  });
  it('is a websocket URL of the same place', () => {
    expect(websocketUrl('https://ops.example/graphql')).toBe('wss://ops.example/graphql');
    expect(websocketUrl('http://127.0.0.1:8000/graphql')).toBe('ws://127.0.0.1:8000/graphql');
  });
});
