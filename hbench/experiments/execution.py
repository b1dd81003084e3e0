"""Running planned cells with one executor: progress, failures, budget, and sweep.json kept current.

    sweep.json          the validated spec and every cell with its run directory and config hash
    failed.json         cells that raised an error, with the message (rewritten at the end of each run)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from hbench.atomic import read_json, write_json
from hbench.devices import parse_device, resolve_device
from hbench.errors import HBenchError
from hbench.experiments.executors import (
    EXECUTORS,
    CellOutcome,
    CellTask,
    pack_run_files,
    run_processes,
    run_ray,
    run_sequential,
    unpack_files,
)
from hbench.experiments.plan import PlannedCell, SweepRun
from hbench.experiments.spec import SweepSpec
from hbench.runs import METRICS, RESUME, SWEEP_PLAN, short_value
from hbench.ui import Feedback

FAILED = "failed.json"


@dataclass(frozen=True)
class ExecutorOptions:
    executor: str = "sequential"  # sequential | processes | ray
    jobs: int = 1  # worker processes (processes executor)
    address: str | None = None  # Ray cluster address; None starts a local instance
    cpus_per_cell: float = 1.0  # Ray resources of one cell
    gpus_per_cell: float | None = None  # None: 1 when this machine has CUDA, else 0
    device: str = "auto"
    ship: bool = False  # Ray workers without shared storage: train in scratch space, send files back

    def check(self) -> None:
        """Usage errors before any cell runs. A device this machine cannot use is one error here, not a
        failed cell per cell; Ray workers may sit on other machines, so for Ray only the spelling is checked."""
        if self.executor not in EXECUTORS:
            raise HBenchError(f"--executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        if self.jobs < 1:
            raise HBenchError(f"--jobs must be at least 1, got {self.jobs}")
        if self.executor != "ray":
            resolve_device(self.device)
        elif self.device != "auto":
            parse_device(self.device)


def read_json_or_empty(path: Path) -> dict[str, Any]:
    """A sweep file (sweep.json, failed.json) as written, {} when absent, the damaged-file error when unreadable."""
    return read_json(path) if path.is_file() else {}


class SweepExecution:
    """Runs batches of planned cells with one executor, keeping sweep.json, failures and counts current."""

    def __init__(self, spec: SweepSpec, out: Path, home: Path | None, executor: ExecutorOptions,
                 feedback: Feedback) -> None:
        self.spec, self.out, self.home, self.executor, self.feedback = spec, out, home, executor, feedback
        self.started = time.perf_counter()
        self.cells: list[PlannedCell] = []
        self.failures: dict[str, dict[str, Any]] = read_json_or_empty(out / FAILED)
        self.counts = {"done": 0, "running": 0, "failed": 0, "diverged": 0}
        self.ran = 0
        self.out_of_time = False
        self.out_of_cells = False

    @property
    def stopped(self) -> bool:
        """The budget (hours or cells) ended this invocation; a rerun goes on."""
        return self.out_of_time or self.out_of_cells

    def within_budget(self, pending: list[PlannedCell]) -> list[PlannedCell]:
        """As many of `pending` as `budget.max_cells` still allows in this invocation."""
        limit = self.spec.budget.max_cells
        if limit is None or len(pending) <= limit - self.ran:
            return pending
        self.out_of_cells = True
        return pending[: max(0, limit - self.ran)]

    def record(self, cells: list[PlannedCell]) -> None:
        """Add cells to the sweep's list (sweep.json is what summaries read)."""
        known = {c.config_hash for c in self.cells}
        self.cells += [c for c in cells if c.config_hash not in known]
        write_json(self.out / SWEEP_PLAN, {
            "spec": self.spec.model_dump(mode="json"),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "cells": [{**asdict(c.cell), "config_hash": c.config_hash, "group_hash": c.group_hash,
                       "protocol": c.protocol, "metric": c.metric,
                       "path": str(c.run_dir.path.relative_to(self.out))} for c in self.cells],
        })

    def run(self, pending: list[PlannedCell], title: str) -> None:
        # Outcomes carry copies of the cells (pickled to workers and back), so cells are matched by value.
        hashes = {_cell_key(c.cell): c.config_hash for c in pending}
        tasks = [CellTask(c.cell, str(self.out), str(self.home) if self.home else None, self.executor.device,
                          ship=self.executor.ship,
                          shipped_run=pack_run_files(c.run_dir.path, self.out)
                          if self.executor.ship and c.state == "resumable" else None,
                          log_every=self.feedback.log_every, trackers=self.feedback.trackers) for c in pending]
        numbers = {_cell_key(c.cell): f"cell {i}/{len(pending)}" for i, c in enumerate(pending, 1)}
        budget = self.spec.budget
        with self.feedback.progress(title, total=len(tasks), unit="cells") as bar:
            def on_start(cell: SweepRun) -> None:
                self.counts["running"] += 1
                bar.update(info=_status_line(self.counts, cell))
                self.feedback.line(f"{numbers[_cell_key(cell)]} start: {_cell_text(cell)}")

            for outcome in _outcomes(tasks, self.executor, on_start):
                self.ran += 1
                self.counts["running"] -= 1
                cell = outcome.cell
                key = hashes[_cell_key(cell)]
                if outcome.files is not None:
                    unpack_files(outcome.files, self.out)
                    if outcome.status != "failed" and outcome.path is not None:
                        # the worker's finished run has no resume state; the one shipped to it is stale here
                        (Path(outcome.path) / RESUME).unlink(missing_ok=True)
                if outcome.status == "failed":
                    self.counts["failed"] += 1
                    self.failures[key] = {"model": cell.model, "seed": cell.seed, "message": outcome.message}
                    last = outcome.message.strip().splitlines()[-1] if outcome.message.strip() else ""
                    self.feedback.warn(f"{cell.model} {_settings_text(cell)} seed {cell.seed} failed: {last}")
                else:
                    self.failures.pop(key, None)
                    self.counts["done" if outcome.status == "completed" else "diverged"] += 1
                write_json(self.out / FAILED, self.failures)
                self.feedback.line(f"{numbers[_cell_key(cell)]} end: {_cell_text(cell)}: {_outcome_text(outcome)}")
                bar.advance(1)
                bar.update(info=_status_line(self.counts, None))
                if budget.max_hours is not None and time.perf_counter() - self.started > budget.max_hours * 3600:
                    self.out_of_time = True
                    self.feedback.warn(f"budget of {budget.max_hours} h spent: stopping; rerun the sweep to go on")
                    break


def _cell_key(cell: SweepRun) -> str:
    return json.dumps(asdict(cell), sort_keys=True)


def _outcomes(tasks: list[CellTask], options: ExecutorOptions,
              on_start: Callable[[SweepRun], None]) -> Iterator[CellOutcome]:
    if options.executor == "ray":
        gpus = options.gpus_per_cell
        if gpus is None:
            gpus = 1.0 if torch.cuda.is_available() else 0.0
        return run_ray(tasks, options.address, options.cpus_per_cell, gpus, on_start)
    if options.executor == "processes" or options.jobs > 1:
        return run_processes(tasks, options.jobs, on_start)
    return run_sequential(tasks, on_start)


def _settings_text(cell: SweepRun) -> str:
    """The cell's model options and, when set, its learning rate (a search's most common axis), as labels
    write them (`short_value`)."""
    settings = dict(cell.options)
    if cell.train.get("lr") is not None:
        settings["lr"] = cell.train["lr"]
    return " ".join(f"{k}={short_value(v)}" for k, v in settings.items())


def _cell_text(cell: SweepRun) -> str:
    settings = _settings_text(cell)
    return " ".join(p for p in (cell.train["dataset"], cell.model, cell.variant, settings, f"seed {cell.seed}") if p)


def _outcome_text(outcome: CellOutcome) -> str:
    """`completed in 12.3s, valid ndcg@10 0.3121, test ...` or the status and its message's last line."""
    text = f"{outcome.status} in {outcome.seconds:.1f}s"
    if outcome.status == "completed" and outcome.path is not None:
        metrics = json.loads((Path(outcome.path) / METRICS).read_text())
        metric = metrics["selection_metric"]
        text += f", valid {metric} {metrics['valid'][metric]:.4f}"
    lines = outcome.message.strip().splitlines()
    return text + (f": {lines[-1]}" if lines else "")


def _status_line(counts: dict[str, int], cell: SweepRun | None) -> str:
    text = f"done {counts['done']} · running {counts['running']} · diverged {counts['diverged']} · failed {counts['failed']}"
    if cell is not None:
        text += f" · started {cell.model} {_settings_text(cell)} seed {cell.seed}"
    return text


