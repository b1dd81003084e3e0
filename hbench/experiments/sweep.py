"""Run a sweep and summarise it: plan → run what is missing → select on validation → summary files.

A sweep directory is an ordinary results directory (run directories in the usual layout) plus

    sweep.json          the validated spec and every cell with its run directory and config hash
    failed.json         cells that raised an error, with the message (rewritten at the end of each run)
    selection.json      the configurations selected on validation (read by `hbench table`)
    sweep-summary.csv   every cell: configuration, status, validation and test metrics, seconds, path
                        (relative to the sweep directory)
    sweep-summary.md    per configuration: mean ± std over seeds, the selected ones and why

Selection looks at validation metrics only: for each dataset and model, the configuration with the highest
mean validation metric over its seeds wins (configurations with a diverged or failed seed rank after those
without); its test metrics are then reported over the seeds. Test metrics never influence the choice.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from hbench.atomic import write_json, write_text
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
from hbench.experiments.plan import Cell, PlannedCell, SweepPlan, plan_sweep
from hbench.experiments.spec import SweepSpec
from hbench.protocols import PROTOCOLS
from hbench.runs import METRICS, RESUME, SELECTION, SWEEP_PLAN
from hbench.ui import QUIET, Feedback

FAILED, SUMMARY_CSV, SUMMARY_MD = ("failed.json", "sweep-summary.csv", "sweep-summary.md")


@dataclass(frozen=True)
class ExecutorOptions:
    executor: str = "sequential"  # sequential | processes | ray
    jobs: int = 1  # worker processes (processes executor)
    address: str | None = None  # Ray cluster address; None starts a local instance
    cpus_per_cell: float = 1.0  # Ray resources of one cell
    gpus_per_cell: float | None = None  # None: 1 when this machine has CUDA, else 0
    device: str = "auto"
    ship: bool = False  # Ray workers without shared storage: train in scratch space, send files back


@dataclass
class Selection:
    dataset: str
    protocol: str
    model: str
    group_hash: str
    settings: str
    metric: str
    valid_mean: float
    seeds: int
    reason: str
    test: dict[str, float] = field(default_factory=dict)


@dataclass
class SweepReport:
    out: Path
    cells: pd.DataFrame
    configurations: pd.DataFrame
    selections: list[Selection]
    ran: int
    failed: int
    skipped: int
    seconds: float
    stopped_by_budget: bool = False

    def markdown(self) -> str:
        return (self.out / SUMMARY_MD).read_text()

    def __repr__(self) -> str:
        chosen = "; ".join(f"{s.model} {s.settings}" for s in self.selections)
        return (f"<sweep {self.out}: {len(self.cells)} cells, {self.ran} run, {self.skipped} already finished, "
                f"{self.failed} failed{'; selected ' + chosen if chosen else ''}>")


def describe_plan(plan: SweepPlan) -> str:
    """The dry-run view: cells, what finished, what is left, and the time it should take."""
    lines = [f"sweep {plan.spec.name}: {len(plan.cells)} cells in {plan.out}"]
    by_model: dict[str, dict[str, int]] = {}
    for c in plan.cells:
        counts = by_model.setdefault(f"{c.cell.train['dataset']} {c.cell.model}", {})
        counts[c.state] = counts.get(c.state, 0) + 1
    states = ("finished", "diverged", "resumable", "new")
    rows = [[name, *(counts.get(s, 0) for s in states)] for name, counts in by_model.items()]
    from tabulate import tabulate

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


class _Execution:
    """Runs batches of planned cells with one executor, keeping sweep.json, failures and counts current."""

    def __init__(self, spec: SweepSpec, out: Path, home: Path | None, executor: ExecutorOptions,
                 feedback: Feedback) -> None:
        self.spec, self.out, self.home, self.executor, self.feedback = spec, out, home, executor, feedback
        self.started = time.perf_counter()
        self.cells: list[PlannedCell] = []
        self.failures: dict[str, dict[str, Any]] = _read_json(out / FAILED)
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
            def on_start(cell: Cell) -> None:
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
                    self.feedback.warn(f"{cell.model} {cell.options} seed {cell.seed} failed: {last}")
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


def run_sweep(
    spec: SweepSpec,
    out: Path,
    *,
    home: Path | None = None,
    executor: ExecutorOptions = ExecutorOptions(),
    feedback: Feedback = QUIET,
) -> SweepReport:
    """Run every cell of `spec` that has not finished (resuming interrupted ones), then summarise.

    Grid, variant and random-search cells are planned up front; TPE searches then propose their trials
    one at a time from the finished ones (see `hbench.experiments.tpe`).
    """
    if executor.executor not in EXECUTORS:
        raise HBenchError(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor.executor!r}")
    if executor.jobs < 1:
        raise HBenchError(f"--jobs must be at least 1, got {executor.jobs}")
    _check_device(executor)
    from hbench.experiments.tpe import require_optuna, run_tpe_searches

    if any(e.is_tpe for e in spec.models):
        require_optuna()  # before any cell runs, not after the grid
    plan = plan_sweep(spec, out, home)
    out.mkdir(parents=True, exist_ok=True)
    execution = _Execution(spec, out, home, executor, feedback)
    execution.record(plan.cells)
    feedback.log(describe_plan(plan).rstrip())
    execution.run(execution.within_budget(plan.pending()), f"sweep {spec.name}")
    skipped = len(plan.cells) - len(plan.pending())
    if not execution.stopped:
        skipped += run_tpe_searches(spec, out, home, execution)
    report = summarise_sweep(out)
    report.ran, report.failed = execution.ran, execution.counts["failed"]
    report.seconds = time.perf_counter() - execution.started
    report.skipped, report.stopped_by_budget = skipped, execution.stopped
    return report


def _cell_key(cell: Cell) -> str:
    return json.dumps(asdict(cell), sort_keys=True)


def _check_device(executor: ExecutorOptions) -> None:
    """A device this machine cannot use is one usage error here, not a failed cell per cell. Ray workers
    may sit on other machines, so for Ray only the spelling is checked."""
    from hbench.devices import parse_device, resolve_device

    if executor.executor != "ray":
        resolve_device(executor.device)
    elif executor.device != "auto":
        parse_device(executor.device)


def _outcomes(tasks: list[CellTask], options: ExecutorOptions, on_start) -> Any:
    if options.executor == "ray":
        gpus = options.gpus_per_cell
        if gpus is None:
            import torch

            gpus = 1.0 if torch.cuda.is_available() else 0.0
        return run_ray(tasks, options.address, options.cpus_per_cell, gpus, on_start)
    if options.executor == "processes" or options.jobs > 1:
        return run_processes(tasks, options.jobs, on_start)
    return run_sequential(tasks, on_start)


def _cell_text(cell: Cell) -> str:
    settings = " ".join(f"{k}={v}" for k, v in cell.options.items())
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


def _status_line(counts: dict[str, int], cell: Cell | None) -> str:
    text = f"done {counts['done']} · running {counts['running']} · diverged {counts['diverged']} · failed {counts['failed']}"
    if cell is not None:
        text += f" · started {cell.model} {' '.join(f'{k}={v}' for k, v in cell.options.items())} seed {cell.seed}"
    return text


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


# -- summary -------------------------------------------------------------------------------------------------

def _cell_rows(out: Path) -> pd.DataFrame:
    """A row per cell of the sweep, finished or not."""
    from hbench.reports.collect import run_settings
    from hbench.runs import RunDirectory

    sweep = _read_json(out / SWEEP_PLAN)
    if not sweep:
        raise HBenchError(f"{out} is not a sweep directory (no {SWEEP_PLAN}); run `hbench sweep` first")
    failures = _read_json(out / FAILED)
    rows = []
    for cell in sweep["cells"]:
        run_dir = RunDirectory(out / cell["path"])
        row: dict[str, Any] = {
            "dataset": cell["train"]["dataset"], "model": cell["model"], "variant": cell["variant"],
            "seed": cell["train"]["seed"], "group_hash": cell["group_hash"], "config_hash": cell["config_hash"],
            "path": cell["path"], "settings": "",  # relative to the sweep directory, so it can move
            # resolved at plan time, so configurations that have not run yet still sit under their protocol
            "protocol": cell.get("protocol") or cell["train"].get("protocol"), "selection_metric": cell.get("metric"),
            "values": json.dumps({**{k: v for k, v in cell["train"].items() if k not in ("dataset", "seed")},
                                  **cell["options"]}, sort_keys=True),
        }
        status = run_dir.status()
        if (run_dir.path / "config.json").is_file():
            config = run_dir.read_config()
            row["settings"] = " ".join(run_settings(config)) or "defaults"
            row["protocol"] = config["protocol"]
            row["selection_metric"] = config["metric"]
        if status is not None:
            metrics = run_dir.read_metrics()
            row.update(status=status, message=metrics.get("message", ""), best_epoch=metrics.get("best_epoch"),
                       train_seconds=metrics.get("train_seconds"), eval_seconds=metrics.get("eval_seconds"))
            row.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
            row.update({f"test/{k}": v for k, v in metrics.get("test", {}).items()})
        elif cell["config_hash"] in failures:
            row.update(status="failed", message=failures[cell["config_hash"]]["message"].strip().splitlines()[-1])
        else:
            epoch = run_dir.resumable_epoch()
            row.update(status="interrupted" if epoch else "pending",
                       message=f"resumable after epoch {epoch}" if epoch else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _configurations(cells: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, list[Selection]]:
    """Aggregate cells over seeds and select, per dataset and model, on the validation metric."""
    configs = []
    selections: list[Selection] = []
    for (dataset, model), model_cells in cells.groupby(["dataset", "model"], sort=False):
        rows = []
        swept = _varying_keys([json.loads(v) for v in model_cells["values"]])
        for group_hash, group in model_cells.groupby("group_hash", sort=False):
            values = json.loads(group["values"].iloc[0])
            completed = group[group["status"] == "completed"]
            protocol = group["protocol"].dropna().iloc[0] if group["protocol"].notna().any() else None
            metric = (group["selection_metric"].dropna().iloc[0]
                      if "selection_metric" in group and group["selection_metric"].notna().any() else None)
            valid = completed.get(f"valid/{metric}", pd.Series(dtype=float)).astype(float)
            row: dict[str, Any] = {
                "dataset": dataset, "protocol": protocol, "model": model, "variant": group["variant"].iloc[0],
                "settings": next((s for s in group["settings"] if s), ""), "group_hash": group_hash,
                "swept": " ".join(f"{k}={_short(values[k])}" for k in swept if k in values),
                "seeds": len(group), "completed": len(completed), "diverged": int((group["status"] == "diverged").sum()),
                "failed": int((group["status"] == "failed").sum()),
                "unfinished": int(group["status"].isin(["pending", "interrupted"]).sum()),
                "metric": metric, "valid_mean": valid.mean() if len(valid) else math.nan,
                "valid_std": valid.std(ddof=1) if len(valid) > 1 else math.nan,
            }
            for name in (PROTOCOLS[protocol].report_metrics if protocol in PROTOCOLS else ()):
                values = completed.get(f"test/{name}", pd.Series(dtype=float)).astype(float)
                row[f"test/{name}"] = values.mean() if len(values) else math.nan
                row[f"test/{name} std"] = values.std(ddof=1) if len(values) > 1 else math.nan
            rows.append(row)
        frame = pd.DataFrame(rows)
        frame["selected"] = False
        if spec.get("select", True):
            complete = frame[(frame["completed"] == frame["seeds"]) & frame["valid_mean"].notna()]
            candidates = complete if len(complete) else frame[frame["valid_mean"].notna()]
            if len(candidates):
                ranked = candidates.sort_values("valid_mean", ascending=False, kind="stable")
                best = ranked.iloc[0]
                frame.loc[frame["group_hash"] == best["group_hash"], "selected"] = True
                selections.append(_selection(best, ranked, frame))
        configs.append(frame)
    return (pd.concat(configs, ignore_index=True) if configs else pd.DataFrame()), selections


def _short(value: Any) -> str:
    """A swept value as a label: floats to 4 significant digits (search trials draw long ones)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _varying_keys(values: list[dict[str, Any]]) -> list[str]:
    """Settings whose value differs between the cells of one model (its grid or search axes)."""
    keys = sorted({k for v in values for k in v})
    return [k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in values}) > 1]


def _selection(best: pd.Series, ranked: pd.DataFrame, frame: pd.DataFrame) -> Selection:
    metric, n = best["metric"], int(best["completed"])
    reason = f"highest mean validation {metric} over {n} seed{'s' * (n != 1)} ({best['valid_mean']:.4f}"
    reason += f" ± {best['valid_std']:.4f})" if not math.isnan(best["valid_std"]) else ")"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        reason += f"; runner-up {_label(second)} at {second['valid_mean']:.4f}"
        if second["valid_mean"] == best["valid_mean"]:
            reason += " (a tie, broken by the order of the spec)"
    elif len(frame) > 1:
        reason += "; the only configuration with a validation result"
    else:
        reason += "; the only configuration"
    incomplete = frame["completed"] < frame["seeds"]
    if best["completed"] < best["seeds"]:
        reason += "; provisional: no configuration has finished every seed yet"
    elif incomplete.any():
        reason += f"; {int(incomplete.sum())} configuration(s) with a diverged, failed or unfinished seed ranked last"
    test = {k.removeprefix("test/"): float(v) for k, v in best.items()
            if isinstance(k, str) and k.startswith("test/") and not k.endswith(" std")}
    return Selection(best["dataset"], best["protocol"], best["model"], best["group_hash"], _label(best), metric, float(best["valid_mean"]), n, reason, test)


def summarise_sweep(out: Path) -> SweepReport:
    """Write the summary files of a sweep directory from its run directories, and return them."""
    spec = _read_json(out / SWEEP_PLAN)["spec"] if (out / SWEEP_PLAN).is_file() else {}
    cells = _cell_rows(out)
    configurations, selections = _configurations(cells, spec)
    write_text(out / SUMMARY_CSV, cells.to_csv(index=False))
    groups = (configurations["group_hash"].tolist() if not spec.get("select", True)
              else [s.group_hash for s in selections])
    write_json(out / SELECTION, {"selected_groups": groups, "selections": [asdict(s) for s in selections]})
    write_text(out / SUMMARY_MD, _markdown(spec, cells, configurations, selections))
    return SweepReport(out, cells, configurations, selections, ran=0, failed=0, skipped=0, seconds=0.0)


def _label(row: pd.Series) -> str:
    """What tells a configuration apart from the others of its model: variant, then swept values
    ("—" for a model swept over seeds only)."""
    return ": ".join(p for p in (row["variant"], row["swept"]) if p) or "—"


def _fmt(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{mean:.4f}" + ("" if std is None or math.isnan(std) else f" ± {std:.4f}")


def _markdown(spec: dict[str, Any], cells: pd.DataFrame, configs: pd.DataFrame, selections: list[Selection]) -> str:
    from tabulate import tabulate

    status = cells["status"].value_counts().to_dict()
    lines = [f"# Sweep {spec.get('name', '')}", "",
             f"{len(cells)} cells: " + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + ".", ""]
    if configs.empty:
        return "\n".join(lines) + "\n"
    for (dataset, protocol), frame in configs.groupby(["dataset", "protocol"], sort=False, dropna=False):
        test_columns = [c for c in frame.columns if c.startswith("test/") and not c.endswith(" std")]
        metric = frame["metric"].dropna().iloc[0] if frame["metric"].notna().any() else "metric"
        token_sets = [set(str(s).split()) - {"defaults"} for s in frame["settings"] if s]  # "": not run yet
        swept_keys = {token.split("=")[0] for swept in frame["swept"] for token in str(swept).split()}
        shared = {t for t in (set.intersection(*token_sets) if token_sets else set())
                  if t.split("=")[0] not in swept_keys}
        table = []
        for _, row in frame.iterrows():
            label = _label(row)
            table.append([row["model"] + (" ✓" if row["selected"] else ""), label,
                          f"{row['completed']}/{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
                          + (f" ({row['failed']} failed)" if row["failed"] else ""),
                          _fmt(row["valid_mean"], row["valid_std"]),
                          *(_fmt(row[c], row[f"{c} std"]) for c in test_columns)])
        headers = ["model", "configuration", "seeds done", f"valid {metric}", *test_columns]
        lines += [f"## {dataset} — {protocol}", "", tabulate(table, headers=headers, tablefmt="github"), ""]
        if shared:
            lines += [f"All configurations (besides model defaults): {' '.join(sorted(shared))}.", ""]
    if selections:
        lines += ["## Selected on validation", ""]
        for s in selections:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in s.test.items())
            chosen = "" if s.settings == "—" else f"{s.settings} — "
            lines.append(f"- **{s.dataset} {s.model}**: {chosen}{s.reason}. Test: {shown}.")
        lines.append("")
    else:
        lines += ["Every configuration is reported (no selection: an ablation).", ""]
    return "\n".join(lines) + "\n"


def ablation_spec(model: str, datasets: list[str], seeds: list[int], train: dict[str, Any],
                  protocol: str | None = None, metric: str | None = None) -> SweepSpec:
    """The model's ablation preset (its `ablations` variants) as a sweep without selection."""
    from hbench.experiments.spec import parse_spec
    from hbench.models.registry import get_model_class

    cls = get_model_class(model)
    if not cls.ablations:
        raise HBenchError(f"model {model!r} has no ablation preset (models with one: "
                          f"{', '.join(_models_with_ablations())})")
    return parse_spec({"name": f"ablate-{model}", "datasets": datasets, "seeds": seeds, "train": train,
                       "protocol": protocol, "metric": metric, "select": False,
                       "models": [{"name": model, "variants": cls.ablations}]}, f"ablation preset of {model}")


def _models_with_ablations() -> list[str]:
    from hbench.models.registry import available_models

    return sorted(name for name, cls in available_models().items() if cls.ablations)

