"""Adaptive search with Optuna's TPE: each trial (one configuration × every seed) is proposed from the
trials that finished before it, with the mean validation metric over the seeds as the objective.

A trial's parameters are written to `tpe-<dataset>-<model>.json` in the sweep directory *before* its cells
run, so an interrupted sweep resumes the same trial (its cells resume from their checkpoints) instead of
asking for a new one. Each proposal comes from a fresh `TPESampler(seed = search seed + trial index)`
given the recorded history, so the sequence of trials depends only on the spec and the results, not on
how many times the sweep was restarted.

Pruning (`search.prune`, Optuna's median rule): each trial record also holds the trial's validation curve
and whether it was pruned. A new trial's thresholds (`prune_below` of its runs: after its k-th validation,
the median of the unpruned finished trials' k-th values) are computed from those records when it is
proposed and written with it, so a resumed trial stops where it would have. Pruned trials are told to TPE
as pruned, with their curves, as Optuna does.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from hbench.atomic import damaged_file, read_json, write_json
from hbench.errors import HBenchError
from hbench.experiments.execution import SweepExecution
from hbench.experiments.plan import PlannedCell, configuration_cells, plan_cell
from hbench.experiments.spec import Axis, ModelEntry, Pruning, SweepSpec

# Optuna is an optional extra (hbench[tpe]): it is imported only where a TPE search needs it.


def distribution(axis: Axis) -> Any:
    """The Optuna distribution of one search axis."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if axis.choices is not None:
        return CategoricalDistribution(axis.choices)
    assert axis.low is not None and axis.high is not None
    if axis.integer:
        return IntDistribution(int(axis.low), int(axis.high), log=axis.log)
    return FloatDistribution(axis.low, axis.high, log=axis.log)


def propose(history: list[dict[str, Any]], space: dict[str, Axis], seed: int) -> dict[str, Any]:
    """The next trial's parameters given finished trials [{params, value, curve?, pruned?}] (value None: the
    trial failed; pruned trials are passed as pruned, with their validation curve as intermediate values)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {key: distribution(axis) for key, axis in sorted(space.items())}
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    for trial in history:
        if trial["value"] is None:
            state, value = optuna.trial.TrialState.FAIL, None
        elif trial.get("pruned"):
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            state, value = optuna.trial.TrialState.COMPLETE, trial["value"]
        curve = trial.get("curve") or []
        study.add_trial(optuna.trial.create_trial(
            params=trial["params"], distributions=distributions, value=value, state=state,
            intermediate_values={step: v for step, v in enumerate(curve) if math.isfinite(v)}))
    return dict(study.ask(distributions).params)


def median_thresholds(history: list[dict[str, Any]], pruning: Pruning) -> list[float] | None:
    """`prune_below` for the next trial: per validation k, the median of the k-th values of the finished,
    unpruned trials (0 during the warm-up and where no such trial got that far: never pruned there);
    None until `pruning.startup_trials` trials have finished unpruned (Optuna's `MedianPruner` rule)."""
    curves = [t["curve"] for t in history if t.get("value") is not None and not t.get("pruned") and t.get("curve")]
    if len(curves) < pruning.startup_trials:
        return None
    thresholds = []
    for k in range(max(len(c) for c in curves)):
        values = [c[k] for c in curves if len(c) > k and math.isfinite(c[k])]
        thresholds.append(float(np.median(values)) if values and k >= pruning.warmup_evaluations else 0.0)
    return thresholds


def _log_path(out: Path, dataset: str, model: str) -> Path:
    return out / f"tpe-{re.sub(r'[^A-Za-z0-9_.-]+', '_', Path(dataset).name)}-{model}.json"


def _recorded_search(entry: ModelEntry) -> dict[str, Any]:
    """A TPE entry's search as its record stores it. More trials extend a search; a search without pruning
    keeps the record it had before pruning existed."""
    assert entry.search is not None
    return entry.search.model_dump(mode="json", exclude={"trials"} | ({"prune"} if entry.search.prune is None
                                                                       else set()))


def check_tpe_records(spec: SweepSpec, out: Path) -> None:
    """Read every TPE record the spec's searches would continue from, before anything runs or is written:
    a damaged or foreign record is refused now, not after the grid or another model's search."""
    for dataset in spec.datasets:
        for entry in spec.models:
            if entry.is_tpe and entry.search is not None:
                _read_history(_log_path(out, dataset, entry.name), _recorded_search(entry), entry.search.space)


def run_tpe_searches(spec: SweepSpec, out: Path, home: Path | None, execution: SweepExecution) -> int:
    """Run every TPE search of the spec; returns the number of cells that had already finished."""
    searches = [e for e in spec.models if e.is_tpe]  # execute_sweep has checked that Optuna is installed
    if not searches:
        return 0
    datasets: dict[str, Any] = {}
    skipped = 0
    for dataset in spec.datasets:
        for entry in searches:
            assert entry.search is not None
            log_path = _log_path(out, dataset, entry.name)
            search = _recorded_search(entry)
            history = _read_history(log_path, search, entry.search.space)
            for index in range(entry.search.trials):
                if index == len(history):
                    finished = [t for t in history if "value" in t]
                    params = propose(finished, entry.search.space, entry.search.seed + index)
                    history.append({"params": params})
                    if entry.search.prune is not None:
                        history[-1]["prune_below"] = median_thresholds(finished, entry.search.prune)
                    write_json(log_path, {"search": search, "trials": history})
                params = history[index]["params"]
                swept = dict(params)
                if history[index].get("prune_below") is not None:
                    swept["prune_below"] = history[index]["prune_below"]
                cells = [plan_cell(cell, out, home, datasets)
                         for cell in configuration_cells(spec, entry, dataset, swept, f"tpe trial {index}")]
                execution.record(cells)
                pending = [c for c in cells if c.state in ("new", "resumable")]
                skipped += len(cells) - len(pending)
                execution.run(execution.within_budget(pending), f"tpe {entry.name} trial {index + 1}/{entry.search.trials}")
                if execution.stopped:
                    return skipped
                history[index]["value"] = _objective(cells)
                if entry.search.prune is not None:
                    history[index]["curve"], history[index]["pruned"] = _curve(cells)
                write_json(log_path, {"search": search, "trials": history})
    return skipped


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise HBenchError("a TPE search needs Optuna: pip install 'hbench[tpe]'") from None


def _read_history(log_path: Path, search: dict[str, Any], space: dict[str, Axis]) -> list[dict[str, Any]]:
    """The trials recorded so far, provided they were proposed from this same search (space, seed) and read
    as `run_tpe_searches` writes them; otherwise the damaged-file error naming the record."""
    if not log_path.is_file():
        return []
    log = read_json(log_path, required=("search", "trials"))
    if log["search"] != search:
        raise HBenchError(f"{log_path} holds the trials of a different search space or seed; a TPE search "
                          "cannot continue from them: use another --out, or delete that file to start over")
    trials = log["trials"]
    if not isinstance(trials, list):
        raise damaged_file(log_path, "its trials are not a list")
    for index, trial in enumerate(trials):
        problem = _trial_problem(trial, space)
        if problem is not None:
            raise damaged_file(log_path, f"trial {index} {problem}")
    return list(trials)


def _trial_problem(trial: Any, space: dict[str, Axis]) -> str | None:
    """What in one recorded trial is not as `run_tpe_searches` writes it (None when nothing is): its
    parameters must be points of `space`, since they become the trial's configuration and Optuna's history."""
    if not isinstance(trial, dict):
        return "is not a JSON object"
    params = trial.get("params")
    if not isinstance(params, dict):
        return "has no params"
    if set(params) != set(space):
        return f"has params {', '.join(sorted(params)) or 'none'}, not the space's {', '.join(sorted(space))}"
    for key, value in sorted(params.items()):
        if not _in_axis(value, space[key]):
            return f"has {key} = {json.dumps(value)}, {_axis_text(space[key])}"
    if "value" in trial and trial["value"] is not None and not _is_number(trial["value"]):
        return f"has value = {json.dumps(trial['value'])}, not a number"
    for key in ("curve", "prune_below"):
        values = trial.get(key)
        if values is not None and not (isinstance(values, list) and all(_is_number(v) for v in values)):
            return f"has a {key} that is not a list of numbers"
    if not isinstance(trial.get("pruned", False), bool):
        return "has pruned that is not true or false"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _in_axis(value: Any, axis: Axis) -> bool:
    if axis.choices is not None:
        return value in axis.choices
    assert axis.low is not None and axis.high is not None
    if not _is_number(value) or not math.isfinite(value) or (axis.integer and value != int(value)):
        return False
    return axis.low <= value <= axis.high


def _axis_text(axis: Axis) -> str:
    if axis.choices is not None:
        return f"not one of {json.dumps(axis.choices)}"
    kind = "an integer" if axis.integer else "a number"
    return f"not {kind} from {axis.low:g} to {axis.high:g}"


def _objective(cells: list[PlannedCell]) -> float | None:
    """Mean validation selection metric over the trial's completed seeds (None when none completed)."""
    values = []
    for cell in cells:
        run_dir = cell.run_dir
        if run_dir.status() == "completed":
            metrics = run_dir.read_metrics()
            values.append(float(metrics["valid"][metrics["selection_metric"]]))
    values = [v for v in values if math.isfinite(v)]
    return sum(values) / len(values) if values else None


def _curve(cells: list[PlannedCell]) -> tuple[list[float], bool]:
    """(validation selection metric per evaluation, mean over the trial's completed seeds; whether any seed
    was pruned). The curve stops at the shortest seed's last validation."""
    curves, pruned = [], False
    for cell in cells:
        if cell.run_dir.status() != "completed":
            continue
        metrics = cell.run_dir.read_metrics()
        pruned = pruned or metrics.get("pruned_at_epoch") is not None
        metric = metrics["selection_metric"]
        curves.append([float(h["valid"][metric]) for h in cell.run_dir.read_history() if "valid" in h])
    if not curves:
        return [], pruned
    length = min(len(c) for c in curves)
    return [sum(c[k] for c in curves) / len(curves) for k in range(length)], pruned
