"""hbench: benchmarking hyperbolic recommenders.

The verbs of the command line are functions here: `prepare`, `load_dataset`, `train`, `sweep`,
`collect_runs`, `table` and `load_run` (see `hbench.api`). They are imported on first use, so that
`import hbench` stays fast (torch loads only when a verb needs it).
"""

import os

from hbench.version import __version__

# OpenMP threads that spin while waiting make every small tensor operation 10-50x slower on small
# virtual machines (measured: a HyperML forward pass 292 ms vs 3.6 ms on 2 vCPUs). Passive waiting costs
# nothing measurable on larger machines. It must be set before torch starts its OpenMP runtime, so it
# is set here, and only when the user has not chosen a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_VERBS = {
    "prepare": "hbench.api", "train": "hbench.api", "sweep": "hbench.api", "table": "hbench.api",
    "load_run": "hbench.api", "load_dataset": "hbench.datasets.load", "collect_runs": "hbench.reports.collect",
}
__all__ = ["__version__", *_VERBS]


def __getattr__(name: str) -> object:
    if name in _VERBS:
        import importlib

        return getattr(importlib.import_module(_VERBS[name]), name)
    raise AttributeError(f"module 'hbench' has no attribute {name!r}")
