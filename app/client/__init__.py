"""The ``promenade`` CLI as a client of the API: ``env list``, ``status``, ``promote``,
``retry``, ``deploy``, ``rollback``, ``logs``.

- ``operations/``: the GraphQL operations it sends, as ``.graphql`` files (checked against
  schema.graphql by tests/client/test_operations.py).
- ``transport.py``: the ``gql`` library sending them (queries and mutations over HTTP with
  httpx, subscriptions over graphql-transport-ws with websockets), and what the CLI says when
  that fails; ``errors.py``: those failures and their exit codes.
- ``api/``: the operations typed, a module per domain (environments, integrations,
  deployments, promotions).
- ``commands``: the commands and their output (rich tables on a terminal, plain text in a
  pipe, ``--json``).
"""
