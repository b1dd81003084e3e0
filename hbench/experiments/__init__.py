"""Experiments: sweeps, seeds and ablations over many runs.

    spec.py       validated sweep specs          plan.py       cells → run directories and their state
    executors.py  where cells run                execution.py  running cells: progress, failures, budget
    tpe.py        adaptive (Optuna TPE) search   selection.py  choosing configurations on validation
    sweep.py      plan → run → select            presets.py    ablation presets   tune.py  equal-budget tuning

Summaries in markdown are reports' (`hbench.reports.sweep_summary`), called from the top level (api, cli).
"""

from hbench.experiments.execution import ExecutorOptions
from hbench.experiments.plan import (
    SweepPlan,
    SweepRun,
    describe_plan,
    expand_cells,
    plan_sweep,
)
from hbench.experiments.presets import ablation_spec
from hbench.experiments.selection import SweepReport
from hbench.experiments.spec import SweepSpec, load_spec, parse_spec
from hbench.experiments.sweep import execute_sweep

__all__ = [
    "ExecutorOptions", "SweepPlan", "SweepReport", "SweepRun", "SweepSpec", "ablation_spec", "describe_plan",
    "execute_sweep", "expand_cells", "load_spec", "parse_spec", "plan_sweep",
]
