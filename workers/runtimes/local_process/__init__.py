"""The LOCAL_PROCESS runtime: integrations run as supervised processes on the worker's machine.

Everything it knows lives in files under its state directory, so that a worker killed at any
point leaves state the next worker (or another worker on the same machine) picks up:

    <state>/routes.json                            route -> deployment, change, address
    <state>/<deployment>/<change>/instance.json    pid, port, start time, state of one instance
    <state>/<deployment>/<change>/output.log       its stdout and stderr (kept after it stops)

and the instance's configuration (``workers.runtimes.instance_files``), removed when the instance
stops: under ``<state>/<deployment>/<change>/config/``, or, when instances run as users of their own
(``workers.runtimes.local_users``, the worker runs as root), under ``/run/promenade/instances``.

An instance gets a clean environment (nothing of the worker's: PATH, LANG and HOME are set
anew), every non-FILE value as a variable, PORT (a free port it must listen on, on 127.0.0.1),
PROMENADE_CONFIG_FILE, PROMENADE_FILES_DIR and PROMENADE_SECRETS_DIR. It is healthy once GET
<health_path> answers 2xx.

An instance runs in its own session, so it outlives the worker that started it; the gateway
(``workers.gateway``) forwards a deployment's stable URL to whatever routes.json names.

The driver is ``runtime`` (``LocalProcessRuntime``); the files of an instance, ``records``;
whether a recorded process is still the one started, ``processes``.
"""

from workers.runtimes.local_process.runtime import LocalProcessRuntime

__all__ = ["LocalProcessRuntime"]
