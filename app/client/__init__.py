"""The ``promenade`` CLI as a client of the API: ``env list``, ``status``, ``promote``, ``deploy``,
``rollback``, ``logs``.

``api`` is a small typed GraphQL client (queries and mutations over HTTP with httpx,
subscriptions over the graphql-transport-ws protocol with websockets); ``commands`` holds the
commands and their output (rich tables on a terminal, plain text in a pipe, ``--json``).
"""
