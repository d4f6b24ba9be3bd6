// Promenade's GraphiQL: the API token is entered once per browser tab and kept in that tab's
// sessionStorage (never in localStorage, where it would outlive the session, nor in the URL,
// where history and logs would keep it); so are GraphiQL's tabs and history, which hold the
// headers. GraphiQL's headers editor starts with
// {"Authorization": "Bearer <token>"}: queries and mutations send it as a header, and GraphiQL
// merges the same headers into the websocket's connection_init payload, where the API reads
// the token of a subscription.
(function () {
  'use strict';

  const STORAGE_KEY = 'promenade.token';
  const DEFAULT_QUERY = '{\n  viewer {\n    user {\n      email\n    }\n  }\n}\n';

  const form = document.getElementById('promenade-token');
  const ide = document.getElementById('graphiql');
  const here = new URL(window.location.href);
  const endpoint = here.origin + here.pathname;
  const subscriptionUrl = endpoint.replace(/^http/, 'ws');

  // GraphiQL keeps its tabs and history, headers included, in the storage it is given: this
  // tab's sessionStorage, so that the token in the headers goes with the tab too.
  function forget() {
    for (const storage of [sessionStorage, localStorage]) {
      for (const key of Object.keys(storage)) {
        if (key === STORAGE_KEY || key.startsWith('graphiql:')) {
          storage.removeItem(key);
        }
      }
    }
    window.location.reload();
  }

  function open(token) {
    form.hidden = true;
    ide.hidden = false;
    const headers = JSON.stringify({ Authorization: 'Bearer ' + token }, null, 2);
    const fetcher = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: subscriptionUrl });
    const forgetButton = React.createElement(
      'button',
      {
        type: 'button',
        className: 'graphiql-un-styled graphiql-toolbar-button',
        title: 'Forget the token',
        'aria-label': 'Forget the token',
        onClick: forget,
      },
      '\u23cf',
    );
    ReactDOM.createRoot(ide).render(
      React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultQuery: DEFAULT_QUERY,
        // A query shared as ?q=... (the parameter "query" would run it instead of the page).
        query: here.searchParams.get('q') || undefined,
        headers: headers,
        shouldPersistHeaders: false,
        storage: sessionStorage,
        isHeadersEditorEnabled: true,
        defaultEditorToolsVisibility: 'headers',
        toolbar: { additionalContent: forgetButton },
      }),
    );
  }

  const token = sessionStorage.getItem(STORAGE_KEY);
  if (token) {
    open(token);
  } else {
    form.hidden = false;
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      const entered = form.elements.token.value.trim();
      if (!entered) {
        return;
      }
      sessionStorage.setItem(STORAGE_KEY, entered);
      open(entered);
    });
  }
})();
