// Runs graphql-http's server audits (the GraphQL over HTTP specification's checks) against
// the API at PROMENADE_URL, with PROMENADE_TOKEN as the bearer token of every request, and
// prints one JSON array of {id, name, status, reason?} on stdout (status: ok, notice for a
// MAY, warn for a SHOULD, error for a MUST). Exits 0 when the audits ran, whatever they found.
//
//   PROMENADE_URL=http://127.0.0.1:8000/graphql PROMENADE_TOKEN=... node audit-graphql-http.mjs
import { serverAudits } from 'graphql-http';

const url = process.env.PROMENADE_URL;
const token = process.env.PROMENADE_TOKEN;
if (!url || !token) {
  console.error('usage: PROMENADE_URL=... PROMENADE_TOKEN=... node audit-graphql-http.mjs');
  process.exit(64);
}

// The audits make their own requests; each goes with the token, as the API requires.
function authenticatedFetch(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: authenticatedFetch })) {
  const result = await audit.fn();
  results.push(
    result.status === 'ok'
      ? { id: result.id, name: result.name, status: result.status }
      : { id: result.id, name: result.name, status: result.status, reason: result.reason },
  );
}
console.log(JSON.stringify(results));
