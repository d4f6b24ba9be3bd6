"""The step machine: QUEUED -> APPLYING_CONFIGURATION -> RESTARTING -> SUCCEEDED or FAILED, one
module per status (as dstack splits its background pipeline by state):

- ``machine``: the driver. It takes a command, holds the deployment's lease, runs the
  deployment's pending changes in order and, for each, the step of its status.
- ``queued``: QUEUED -> APPLYING_CONFIGURATION, the change taken by this worker.
- ``applying``: APPLYING_CONFIGURATION -> RESTARTING, the configuration written and frozen.
- ``restarting``: the new instance started (``workers.instances.start_instance``), routed to,
  the old ones retired.
- ``ending``: SUCCEEDED with a new revision, or FAILED with the reason.

Every status is written through ``app.services.lifecycle``. Each step ends with a commit that
records it, so a worker killed at any point leaves a state the next worker resumes from:
configuration is applied once (the commit that applies it also moves the change to
RESTARTING), the runtime's calls are idempotent by change id, and the revision is written in
the same commit that marks the change SUCCEEDED (and the database refuses a second row for the
same revision number).
"""

from workers.steps.machine import StepMachine

__all__ = ["StepMachine"]
