// A form's typed values as the API's configuration entries.

export interface Entry {
  key: string;
  value: string | null;
}

/** The fields a person filled in, in the form's order; empty ones mean "keep the value". */
export function overrideEntries(values: Readonly<Record<string, string>>): Entry[] {
  return Object.entries(values)
    .filter(([, value]) => value !== '')
    .map(([key, value]) => ({ key, value }));
}

/**
 * The entries of a configuration form: changed plain values, typed secrets, and removals
 * (``null``). A secret's field starts empty: empty means unchanged.
 */
export function configurationEntries(
  current: Readonly<Record<string, string | null>>,
  typed: Readonly<Record<string, string>>,
  removed: ReadonlySet<string>,
): Entry[] {
  const entries: Entry[] = [];
  for (const [key, value] of Object.entries(typed)) {
    if (removed.has(key)) continue;
    if (value === '' || value === current[key]) continue;
    entries.push({ key, value });
  }
  for (const key of removed) entries.push({ key, value: null });
  return entries;
}
