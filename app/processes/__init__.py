"""The processes of the ``promenade`` server commands, a module each, named after what runs:

- ``embedded.py``: ``promenade up``: the API, the outbox relay, the in-process bus, a worker
  for the installation's data planes and their gateway, in one process;
- ``api.py``: ``promenade api``: the API (``app.main``) under uvicorn, on RabbitMQ;
- ``worker.py``: ``promenade worker``: a worker for given data planes, on RabbitMQ;
- ``gateway.py``: ``promenade gateway``: the LOCAL_PROCESS gateway alone;
- ``maintenance.py``: the commands that run once and end: ``migrate``, ``bootstrap``,
  ``rotate-key``;
- ``startup.py``: what they all start with (logging, the database engine).

``app.cli`` imports these modules only when one of their commands runs, so that the client
commands (``promenade status``, ``promote``, ...) start without loading the server.
"""
