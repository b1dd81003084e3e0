"""Experiments: sweeps, seeds and ablations over many runs (plan, execute, resume, select, summarise)."""

from hbench.experiments.plan import Cell, SweepPlan, expand_cells, plan_sweep
from hbench.experiments.spec import SweepSpec, load_spec, parse_spec
from hbench.experiments.sweep import (
    ExecutorOptions,
    SweepReport,
    ablation_spec,
    describe_plan,
    run_sweep,
    summarise_sweep,
)

__all__ = [
    "Cell", "ExecutorOptions", "SweepPlan", "SweepReport", "SweepSpec", "ablation_spec", "describe_plan",
    "expand_cells", "load_spec", "parse_spec", "plan_sweep", "run_sweep", "summarise_sweep",
]
