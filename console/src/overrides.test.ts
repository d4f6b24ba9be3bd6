import { describe, expect, it } from 'vitest';

import { configurationEntries, overrideEntries } from './overrides';

describe('overrideEntries', () => {
  it('sends only the fields filled in', () => {
    expect(overrideEntries({ GREETING: 'Hi', API_KEY: '', PORT: '8080' })).toEqual([
      { key: 'GREETING', value: 'Hi' },
      { key: 'PORT', value: '8080' },
    ]);
  });
});

describe('configurationEntries', () => {
  it('sends changed values, typed secrets and removals', () => {
    const entries = configurationEntries(
      { GREETING: 'Hello', API_KEY: null, COLOR: 'red' },
      { GREETING: 'Hello', API_KEY: 's3cret', COLOR: 'blue', OLD: 'x' },
      new Set(['OLD']),
    );
    expect(entries).toEqual([
      { key: 'API_KEY', value: 's3cret' },
      { key: 'COLOR', value: 'blue' },
      { key: 'OLD', value: null },
    ]);
  });

  it('leaves an empty secret field as it is', () => {
    expect(configurationEntries({ API_KEY: null }, { API_KEY: '' }, new Set())).toEqual([]);
  });
});
