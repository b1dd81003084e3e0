"""Run a sweep: plan → run what is missing (grid, variants, random search, then TPE trials) → select.

A sweep directory is an ordinary results directory (run directories in the usual layout) plus the files
of `hbench.experiments.execution` (sweep.json, failed.json), of `hbench.experiments.selection`
(sweep-summary.csv, selection.json) and the markdown summary the caller renders (`summarise`, e.g.
`hbench.reports.sweep_summary.summarise_sweep`, which also selects).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from hbench.atomic import check_target
from hbench.experiments.execution import ExecutorOptions, SweepExecution
from hbench.experiments.plan import describe_plan, plan_sweep
from hbench.experiments.selection import SweepReport
from hbench.experiments.spec import SweepSpec
from hbench.experiments.tpe import check_tpe_records, require_optuna, run_tpe_searches
from hbench.ui import QUIET, Feedback

# Selects and writes the summary files of a finished (or stopped) sweep directory.
Summarise = Callable[[Path], SweepReport]


def execute_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    summarise: Summarise,
    home: Path | None = None,
    executor: ExecutorOptions = ExecutorOptions(),
    feedback: Feedback = QUIET,
) -> SweepReport:
    """Run every cell of `spec` that has not finished (resuming interrupted ones), then `summarise(out)`.

    Grid, variant and random-search cells are planned up front; TPE searches then propose their trials
    one at a time from the finished ones (see `hbench.experiments.tpe`).
    """
    executor.check()
    check_target(out, directory=True)  # --out naming a file, or a path under one: refused before any work
    if any(e.is_tpe for e in spec.models):
        require_optuna()  # before any cell runs, not after the grid
        check_tpe_records(spec, out)  # a damaged record too
    plan = plan_sweep(spec, out, home)
    out.mkdir(parents=True, exist_ok=True)
    execution = SweepExecution(spec, out, home, executor, feedback)
    execution.record(plan.cells)
    feedback.log(describe_plan(plan).rstrip())
    execution.run(execution.within_budget(plan.pending()), f"sweep {spec.name}")
    skipped = len(plan.cells) - len(plan.pending())
    if not execution.stopped:
        skipped += run_tpe_searches(spec, out, home, execution)
    report = summarise(out)
    report.ran, report.failed = execution.ran, execution.counts["failed"]
    report.seconds = time.perf_counter() - execution.started
    report.skipped, report.stopped_by_budget = skipped, execution.stopped
    return report
