// The console's only way to the API: GraphQL over HTTP (fetch) for queries and mutations,
// graphql-transport-ws (graphql-ws) for subscriptions, both at this server's /graphql with the
// token as a bearer token. Nothing here knows about the page.
import { createClient, type Client } from 'graphql-ws';

/** The token was refused (HTTP 401, or the websocket closed with 4403): sign in again. */
export class Unauthenticated extends Error {
  constructor() {
    super('The API token was refused. Sign in again with a valid token.');
    this.name = 'Unauthenticated';
  }
}

/** The API answered with GraphQL errors (a bad query, a server fault), not a typed result. */
export class RequestFailed extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RequestFailed';
  }
}

interface GraphQLResponse<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export type Variables = Record<string, unknown>;

export interface Subscription<T> {
  onData: (data: T) => void;
  onError?: (error: Error) => void;
  onComplete?: () => void;
}

/** The endpoint beside the page: /graphql of the same origin and path prefix. */
export function endpointFor(location: { origin: string; pathname: string }): string {
  const base = location.pathname.replace(/[^/]*$/, '');
  return `${location.origin}${base}graphql`;
}

export function websocketUrl(endpoint: string): string {
  return endpoint.replace(/^http/, 'ws');
}

export class Api {
  private socket: Client | null = null;

  constructor(
    private readonly token: string,
    private readonly endpoint: string,
    private readonly onUnauthenticated: () => void = () => {},
  ) {}

  async request<T>(query: string, variables: Variables = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/graphql-response+json, application/json',
          Authorization: `Bearer ${this.token}`,
        },
        body: JSON.stringify({ query, variables }),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch {
      throw new RequestFailed('Promenade did not answer. Is the API running?');
    }
    if (response.status === 401) {
      this.onUnauthenticated();
      throw new Unauthenticated();
    }
    let body: GraphQLResponse<T>;
    try {
      body = (await response.json()) as GraphQLResponse<T>;
    } catch {
      throw new RequestFailed(`The API answered HTTP ${response.status} without a GraphQL body.`);
    }
    if (body.errors?.length) {
      throw new RequestFailed(body.errors.map((error) => error.message).join('; '));
    }
    if (body.data == null) {
      throw new RequestFailed(`The API answered HTTP ${response.status} without data.`);
    }
    return body.data;
  }

  /** Starts a subscription; the returned function ends it. One websocket serves them all. */
  subscribe<T>(query: string, variables: Variables, sink: Subscription<T>): () => void {
    return this.client().subscribe<T>(
      { query, variables },
      {
        next: (result) => {
          if (result.errors?.length) {
            sink.onError?.(new RequestFailed(result.errors.map((e) => e.message).join('; ')));
          } else if (result.data) {
            sink.onData(result.data);
          }
        },
        error: (error: unknown) => {
          sink.onError?.(error instanceof Error ? error : new RequestFailed(describeClose(error)));
        },
        complete: () => sink.onComplete?.(),
      },
    );
  }

  close(): void {
    void this.socket?.dispose();
    this.socket = null;
  }

  private client(): Client {
    if (this.socket === null) {
      this.socket = createClient({
        url: websocketUrl(this.endpoint),
        connectionParams: { authorization: `Bearer ${this.token}` },
        lazy: true,
        // Reconnects after a restart of the API; subscriptions resume on the new socket.
        retryAttempts: Infinity,
        shouldRetry: (event) => !isRefused(event),
        on: {
          closed: (event) => {
            if (isRefused(event)) {
              this.onUnauthenticated();
            }
          },
        },
      });
    }
    return this.socket;
  }
}

function isRefused(event: unknown): boolean {
  return typeof event === 'object' && event !== null && 'code' in event && event.code === 4403;
}

function describeClose(event: unknown): string {
  if (typeof event === 'object' && event !== null && 'reason' in event && event.reason) {
    return `The live connection closed: ${String(event.reason)}`;
  }
  return 'The live connection closed.';
}
