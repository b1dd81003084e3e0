"""Select a sweep's configurations on validation: a row per cell, aggregated over seeds, one winner per model.

    sweep-summary.csv   every cell: configuration, status, validation and test metrics, seconds, path
                        (relative to the sweep directory)
    selection.json      the configurations selected on validation (read by `hbench table`)

Selection looks at validation metrics only: for each dataset and model, the configuration with the highest
mean validation metric over its seeds wins (configurations with a diverged or failed seed rank after those
without); its test metrics are then reported over the seeds. Test metrics never influence the choice.
Which test metrics a configuration reports is the caller's (reports' per-protocol metrics).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hbench.atomic import write_json, write_text
from hbench.errors import HBenchError
from hbench.experiments.execution import FAILED, read_json_or_empty
from hbench.experiments.spec import SEARCH_ONLY_KEYS
from hbench.models.registry import non_default_settings
from hbench.protocols import PROTOCOLS
from hbench.runs import CONFIG, SELECTION, SWEEP_PLAN, RunDirectory, short_value

SUMMARY_CSV = "sweep-summary.csv"


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
    """What a sweep returns: every cell and configuration with its metrics, the configurations selected on
    validation, and how many cells ran, failed or were skipped (finished before)."""

    out: Path
    spec: dict[str, Any]  # the spec as sweep.json records it ({} without one)
    cells: pd.DataFrame
    configurations: pd.DataFrame
    selections: list[Selection]
    ran: int
    failed: int
    skipped: int
    seconds: float
    stopped_by_budget: bool = False

    @property
    def without_result(self) -> bool:
        """Every cell ran and none completed: each diverged or failed, so the sweep has no result at all (a
        sweep stopped by its budget, with cells still to run, is not one)."""
        return len(self.cells) > 0 and set(self.cells["status"]) <= {"diverged", "failed"}

    def __repr__(self) -> str:
        chosen = "; ".join(f"{s.model} {s.settings}" for s in self.selections)
        return (f"<sweep {self.out}: {len(self.cells)} cells, {self.ran} run, {self.skipped} already finished, "
                f"{self.failed} failed{'; selected ' + chosen if chosen else ''}>")


def sweep_cells(out: Path) -> pd.DataFrame:
    """A row per cell of the sweep, finished or not."""
    sweep = read_json_or_empty(out / SWEEP_PLAN)
    if not sweep:
        raise HBenchError(f"{out} is not a sweep directory (no {SWEEP_PLAN}); run `hbench sweep` first")
    failures = read_json_or_empty(out / FAILED)
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
        if (run_dir.path / CONFIG).is_file():
            run = run_dir.read_run()
            row["settings"] = " ".join(non_default_settings(run)) or "defaults"
            row["protocol"] = run.protocol
            row["selection_metric"] = run.metric
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


def mean_and_std(values: pd.Series) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (NaN where there are too few values for either)."""
    return (values.mean() if len(values) else math.nan), (values.std(ddof=1) if len(values) > 1 else math.nan)


def select_configurations(cells: pd.DataFrame, spec: dict[str, Any]) -> tuple[pd.DataFrame, list[Selection]]:
    """Aggregate cells over seeds and select, per dataset and model, on the validation metric.

    The test metrics aggregated are each protocol's report metrics (`hbench.protocols`)."""
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
            valid_mean, valid_std = mean_and_std(completed.get(f"valid/{metric}", pd.Series(dtype=float)).astype(float))
            row: dict[str, Any] = {
                "dataset": dataset, "protocol": protocol, "model": model, "variant": group["variant"].iloc[0],
                "settings": next((s for s in group["settings"] if s), ""), "group_hash": group_hash,
                "swept": " ".join(f"{k}={short_value(values[k])}" for k in swept if k in values),
                "seeds": len(group), "completed": len(completed), "diverged": int((group["status"] == "diverged").sum()),
                "failed": int((group["status"] == "failed").sum()),
                "unfinished": int(group["status"].isin(["pending", "interrupted"]).sum()),
                "metric": metric, "valid_mean": valid_mean, "valid_std": valid_std,
            }
            for name in (PROTOCOLS[protocol].report_metrics if protocol in PROTOCOLS else ()):
                row[f"test/{name}"], row[f"test/{name} std"] = mean_and_std(
                    completed.get(f"test/{name}", pd.Series(dtype=float)).astype(float))
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


def _varying_keys(values: list[dict[str, Any]]) -> list[str]:
    """Settings whose value differs between the cells of one model (its grid or search axes)."""
    keys = sorted({k for v in values for k in v} - SEARCH_ONLY_KEYS)
    return [k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in values}) > 1]


def _selection(best: pd.Series, ranked: pd.DataFrame, frame: pd.DataFrame) -> Selection:
    metric, n = best["metric"], int(best["completed"])
    reason = f"highest mean validation {metric} over {n} seed{'s' * (n != 1)} ({best['valid_mean']:.4f}"
    reason += f" ± {best['valid_std']:.4f})" if not math.isnan(best["valid_std"]) else ")"
    if len(ranked) > 1:
        second = ranked.iloc[1]
        reason += f"; runner-up {configuration_label(second)} at {second['valid_mean']:.4f}"
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
    return Selection(best["dataset"], best["protocol"], best["model"], best["group_hash"], configuration_label(best),
                     metric, float(best["valid_mean"]), n, reason, test)


def configuration_label(row: pd.Series) -> str:
    """What tells a configuration apart from the others of its model: variant, then swept values
    ("—" for a model swept over seeds only)."""
    return ": ".join(p for p in (row["variant"], row["swept"]) if p) or "—"


def select_sweep(out: Path) -> SweepReport:
    """Select on validation from the sweep directory's run directories; write sweep-summary.csv and
    selection.json, and return them."""
    spec = read_json_or_empty(out / SWEEP_PLAN)["spec"] if (out / SWEEP_PLAN).is_file() else {}
    cells = sweep_cells(out)
    configurations, selections = select_configurations(cells, spec)
    write_text(out / SUMMARY_CSV, cells.to_csv(index=False))
    groups = (configurations["group_hash"].tolist() if not spec.get("select", True)
              else [s.group_hash for s in selections])
    write_json(out / SELECTION, {"selected_groups": groups, "selections": [asdict(s) for s in selections]})
    return SweepReport(out, spec, cells, configurations, selections, ran=0, failed=0, skipped=0, seconds=0.0)
