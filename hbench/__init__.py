"""hbench: benchmarking hyperbolic recommenders.

The verbs of the command line are functions here: `prepare`, `load_dataset`, `train`, `sweep`,
`collect_runs`, `table` and `load_run` (see `hbench.api`). They are imported on first use, so that
`import hbench` stays fast (torch loads only when a verb needs it).
"""

import os
import sys

from hbench.version import __version__

# OpenMP threads that spin while waiting make every small tensor operation 10-50x slower on small
# virtual machines (measured: a HyperML forward pass 292 ms vs 3.6 ms on 2 vCPUs). Passive waiting costs
# nothing measurable on larger machines. It must be set before torch starts its OpenMP runtime, so it
# is set here, and only when the user has not chosen a policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _use_user_cache_for_numba() -> None:
    """Point Numba's cache of compiled kernels at the user cache directory (`<user cache>/hbench/numba`).

    Without this, every `cache=True` kernel writes .nbi/.nbc files into `__pycache__` next to its module: in
    `site-packages/hbench/` for a regular install. pip does not know these files, so uninstalling leaves the
    folder behind, and it then shadows a later editable install of hbench in the same venv (every command
    failed with "No module named 'hbench.datasets.catalog'": audit R1). Compiled caches belong in the user
    cache. Numba reads NUMBA_CACHE_DIR when `numba.core.config` is imported, which any hbench module that
    compiles a kernel does after this package: so it is set here, before Numba can be imported, and only
    when the user has not set it (Numba treats an empty value as unset, so do we). A Numba imported before
    hbench is told to read its environment again.
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    import platformdirs  # light (a few ms); numba itself is not imported here

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(platformdirs.user_cache_dir("hbench"), "numba")
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.reload_config()  # type: ignore[attr-defined]


_use_user_cache_for_numba()

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
