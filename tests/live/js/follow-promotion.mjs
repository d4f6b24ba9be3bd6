// Follows one promotion with the graphql-ws client, as a frontend app would: one JSON line per
// status on stdout; exits 0 once the subscription completes after SUCCEEDED, 1 when it ends
// otherwise (another final status, a GraphQL error), 2 when the connection fails (a close
// code such as 4403 is printed on stderr).
//
//   PROMENADE_WS_URL=ws://127.0.0.1:8000/graphql PROMENADE_TOKEN=... \
//     node follow-promotion.mjs PROMOTION_ID
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const url = process.env.PROMENADE_WS_URL;
const token = process.env.PROMENADE_TOKEN;
const [promotionId] = process.argv.slice(2);
if (!url || !token || !promotionId) {
  console.error('usage: PROMENADE_WS_URL=... PROMENADE_TOKEN=... node follow-promotion.mjs ID');
  process.exit(64);
}

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${token}` },
  retryAttempts: 0,
});

const query = `subscription($id: ID!) {
  promotionStatus(id: $id) { promotionId status detail at }
}`;

let last = null;
let exitCode = 0;
try {
  for await (const result of client.iterate({ query, variables: { id: promotionId } })) {
    if (result.errors) {
      console.error(JSON.stringify({ errors: result.errors }));
      exitCode = 1;
      break;
    }
    last = result.data.promotionStatus.status;
    console.log(JSON.stringify(result.data.promotionStatus));
  }
  if (exitCode === 0 && last !== 'SUCCEEDED') {
    console.error(JSON.stringify({ ended: last }));
    exitCode = 1;
  }
} catch (error) {
  // graphql-ws rejects with the CloseEvent when the server closes the socket, with an array
  // of GraphQL errors for an `error` message, or with an Error.
  const detail =
    error && typeof error === 'object' && 'code' in error
      ? { closed: error.code, reason: error.reason }
      : { error: Array.isArray(error) ? error : String(error) };
  console.error(JSON.stringify(detail));
  exitCode = 2;
} finally {
  await client.dispose();
}
process.exit(exitCode);
