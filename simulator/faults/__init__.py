"""Built-in fault injectors, registered through the ``cka_sim.faults`` entry point.

A fault is ``fn(ctx, **params)`` that puts a cluster into the broken state a task starts
from, using only the Node API.
"""

from simulator.faults import certs, etcd, files, kube, manifest  # noqa: F401
