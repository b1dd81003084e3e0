"""From a spec to cells: one cell = one training run (`SweepRun`: model, options, training settings, seed).

Every cell resolves to its run directory, which is named by the hash of its resolved configuration, so
the plan of a rerun finds what already finished (skip), what was interrupted (resume) and what is new.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tabulate import tabulate

from hbench.config import TrainConfig, coerce_fields
from hbench.datasets.load import load_dataset
from hbench.experiments.spec import TRAIN_KEYS, ModelEntry, SweepSpec, sample_search
from hbench.models.registry import get_model_class
from hbench.runs import RunDirectory
from hbench.training.trainer import plan_run


@dataclass(frozen=True)
class SweepRun:
    """One cell of a sweep: a training run in plain data (picklable: it travels to worker processes and Ray tasks)."""

    model: str
    options: dict[str, Any]
    train: dict[str, Any]  # TrainConfig fields, dataset and seed included, device excluded
    variant: str = ""  # the ablation variant or search trial it belongs to, for people reading the summary

    @property
    def seed(self) -> int:
        return int(self.train["seed"])

    def config(self, device: str = "auto") -> TrainConfig:
        return TrainConfig(**self.train, device=device)


@dataclass
class PlannedCell:
    cell: SweepRun
    run_dir: RunDirectory
    group_hash: str
    config_hash: str
    state: str  # finished | diverged | resumable | new
    protocol: str  # resolved (the dataset's default when the spec names none)
    metric: str  # resolved validation metric that selects
    resumable_epoch: int | None = None
    seconds: float | None = None  # train + eval seconds of a finished cell


@dataclass
class SweepPlan:
    spec: SweepSpec
    out: Path
    cells: list[PlannedCell] = field(default_factory=list)

    def count(self, *states: str) -> int:
        return sum(c.state in states for c in self.cells)

    def pending(self) -> list[PlannedCell]:
        return [c for c in self.cells if c.state in ("new", "resumable")]

    def estimated_seconds(self) -> float | None:
        """Time to run what is pending, from the finished cells of the same model (else of any model)."""
        finished = [c for c in self.cells if c.seconds is not None]
        if not finished:
            return None
        overall = sum(c.seconds for c in finished) / len(finished)  # type: ignore[misc]
        total = 0.0
        for cell in self.pending():
            same = [c.seconds for c in finished if c.cell.model == cell.cell.model]
            total += sum(same) / len(same) if same else overall  # type: ignore[arg-type]
        return total


def expand_cells(spec: SweepSpec) -> list[SweepRun]:
    """Every cell of the spec in a stable order: dataset, model entry, configuration, seed."""
    cells = []
    for dataset in spec.datasets:
        for entry in spec.models:
            configurations: list[tuple[str, dict[str, Any]]] = []
            keys = sorted(entry.grid)
            grid_points = [dict(zip(keys, values, strict=True))
                           for values in itertools.product(*(entry.grid[k] for k in keys))]
            if entry.is_tpe:
                continue  # adaptive: its trials are proposed while the sweep runs (hbench.experiments.tpe)
            trials = sample_search(entry.search) if entry.search is not None else [{}]
            variants = list(entry.variants.items()) or [("", {})]
            for (variant, variant_options), point, (t, trial) in itertools.product(
                    variants, grid_points, enumerate(trials)):
                label = variant if entry.search is None else f"{variant + ' ' if variant else ''}trial {t}"
                configurations.append((label.strip(), {**variant_options, **point, **trial}))
            for label, swept in configurations:
                cells += configuration_cells(spec, entry, dataset, swept, label)
    return cells


def configuration_cells(spec: SweepSpec, entry: ModelEntry, dataset: str, swept: dict[str, Any],
                        label: str) -> list[SweepRun]:
    """One configuration of a model entry (fixed settings overlaid with `swept` values) on every seed."""
    options_class = get_model_class(entry.name).Options
    option_names = set(options_class.__dataclass_fields__)
    # Typed as the model and TrainConfig declare them, so that `c = 2` and `--c 2` are one cell.
    options = coerce_fields(options_class, {**entry.options, **{k: v for k, v in swept.items() if k in option_names}})
    train = coerce_fields(TrainConfig, {**spec.train, **entry.train,
                                        **{k: v for k, v in swept.items() if k in TRAIN_KEYS}})
    if spec.protocol is not None:
        train.setdefault("protocol", spec.protocol)
    if spec.metric is not None:
        train.setdefault("metric", spec.metric)
    return [SweepRun(entry.name, options, {**train, "dataset": dataset, "seed": seed}, label) for seed in spec.seeds]


def plan_cell(cell: SweepRun, out: Path, home: Path | None, datasets: dict[str, Any]) -> PlannedCell:
    """Resolve one cell to its run directory and state; `datasets` caches loaded datasets by name."""
    name = cell.train["dataset"]
    if name not in datasets:
        datasets[name] = load_dataset(name, home)
    planned = plan_run(cell.model, cell.config(), cell.options, out=out, home=home, dataset=datasets[name])
    run_dir = planned.run_dir
    status = run_dir.status()
    if status is not None and run_dir.lacks_test_curve(planned.run):
        status = None  # finished without the test curve the cell asks for: trained again (`train_planned`)
    seconds = None
    if status is not None:
        metrics = run_dir.read_metrics()
        seconds = sum(float(metrics.get(key, 0)) for key in ("train_seconds", "eval_seconds", "test_curve_seconds"))
    epoch = run_dir.resumable_epoch()
    state = {"completed": "finished", "diverged": "diverged"}.get(status or "", "resumable" if epoch else "new")
    return PlannedCell(cell, run_dir, planned.run.group_hash, planned.run.config_hash, state, planned.run.protocol,
                       planned.run.metric, epoch, seconds)


def plan_sweep(spec: SweepSpec, out: Path, home: Path | None = None) -> SweepPlan:
    """Resolve every cell to its run directory and find out what state it is in."""
    plan = SweepPlan(spec, out)
    datasets: dict[str, Any] = {}
    seen: set[str] = set()
    for cell in expand_cells(spec):
        planned = plan_cell(cell, out, home, datasets)
        if planned.config_hash in seen:  # two spec entries describing one run: it runs once
            continue
        seen.add(planned.config_hash)
        plan.cells.append(planned)
    return plan


def describe_plan(plan: SweepPlan) -> str:
    """The dry-run view: cells, what finished, what is left, and the time it should take."""
    lines = [f"sweep {plan.spec.name}: {len(plan.cells)} cells in {plan.out}"]
    by_model: dict[str, dict[str, int]] = {}
    for c in plan.cells:
        counts = by_model.setdefault(f"{c.cell.train['dataset']} {c.cell.model}", {})
        counts[c.state] = counts.get(c.state, 0) + 1
    states = ("finished", "diverged", "resumable", "new")
    rows = [[name, *(counts.get(s, 0) for s in states)] for name, counts in by_model.items()]
    lines.append(tabulate(rows, headers=["dataset model", *states], tablefmt="github"))
    pending = len(plan.pending())
    estimate = plan.estimated_seconds()
    eta = "unknown (no finished cell yet)" if estimate is None else f"≈ {estimate / 60:.1f} min sequentially"
    lines.append(f"finished {plan.count('finished')}, diverged {plan.count('diverged')}, to run {pending} "
                 f"({plan.count('resumable')} resume from a checkpoint); estimated time {eta}")
    limit = plan.spec.budget.max_cells
    if limit is not None and pending > limit:
        lines.append(f"budget max_cells = {limit}: this invocation runs {limit} of them; rerun to go on")
    for entry in plan.spec.models:
        if entry.is_tpe:
            lines.append(f"then a TPE search for {entry.name}: {entry.search.trials} trials × {len(plan.spec.seeds)} "
                         f"seeds per dataset, proposed one after another from the finished trials")
    return "\n".join(lines) + "\n"
