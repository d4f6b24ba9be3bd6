"""The KUBERNETES runtime: each deployment is a Deployment of the build's image in a namespace of
its organization and environment, a change a rollout of it.

- ``manifests``: what is applied for a change (names, labels, confinement, configuration).
- ``rollout``: when a rollout is complete or failed and what a failure says, from the objects
  the API returns; which earlier revision a failed rollout goes back to.
- ``runtime``: the driver over the Kubernetes API (server-side apply, field manager
  ``promenade-worker``), inside the cluster or with a kubeconfig.

The RBAC a worker needs is ``deploy/kubernetes/rbac.yaml``.
"""
