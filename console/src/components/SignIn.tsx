import { useState } from 'preact/hooks';

import { ErrorSummary } from './ui';

/** Asks for an API token; ``onToken`` checks it against the API. */
export function SignIn(props: {
  onToken: (token: string) => void;
  problem: string | undefined;
  checking: boolean;
}): preact.JSX.Element {
  const [token, setToken] = useState('');
  return (
    <main class="sign-in">
      <h1>Promenade</h1>
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (token.trim()) props.onToken(token.trim());
        }}
      >
        <h2>Sign in</h2>
        <p>
          Paste an API token: the one <code>promenade up</code> printed, or one from{' '}
          <code>promenade bootstrap --email you@example.com</code>. It is kept for this browser
          tab only.
        </p>
        <ErrorSummary message={props.problem} />
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(event) => setToken(event.currentTarget.value)}
        />
        <button type="submit" class="button-primary" disabled={props.checking}>
          {props.checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
