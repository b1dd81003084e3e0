"""Per-epoch curves of one or more runs (history.jsonl): the numbers behind `hbench plot training`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hbench.errors import HBenchError
from hbench.reports.plots.rundirs import run_label, runs_below


@dataclass(frozen=True)
class TrainingCurve:
    label: str  # model (settings) seed N
    epochs: np.ndarray  # every logged epoch
    loss: np.ndarray  # mean training loss of each epoch
    valid_epochs: np.ndarray  # the epochs that were validated
    valid: np.ndarray  # the metric at those epochs
    best_epoch: int | None  # from metrics.json once the run has finished
    status: str  # completed | diverged | running (no metrics.json yet)


def training_curves(paths: list[Path], metric: str | None = None) -> tuple[list[TrainingCurve], str]:
    """Curves of every run named (or found below a named directory), and the validation metric shown.

    The metric defaults to the runs' own selection metric; runs that select on different metrics need
    an explicit one. Runs with no epoch logged yet are skipped; none at all is an error.
    """
    runs = runs_below(paths)
    configs = [run.read_config() for run in runs]
    if metric is None:
        chosen = sorted({c["metric"] for c in configs})
        if len(chosen) > 1:
            raise HBenchError(f"these runs select on different metrics ({', '.join(chosen)}); pass --metric")
        metric = chosen[0]
    labels = _distinct_labels(runs, configs)
    curves = []
    for run, config, label in zip(runs, configs, labels, strict=True):
        history = run.read_history()
        if not history:
            continue
        validated = [h for h in history if metric in h.get("valid", {})]
        metrics = run.read_metrics() if run.status() else {}
        curves.append(TrainingCurve(
            label=label,
            epochs=np.array([h["epoch"] for h in history]),
            loss=np.array([h["loss"] for h in history], dtype=float),
            valid_epochs=np.array([h["epoch"] for h in validated]),
            valid=np.array([h["valid"][metric] for h in validated], dtype=float),
            best_epoch=metrics.get("best_epoch") or None,
            status=metrics.get("status", "running"),
        ))
    if not curves:
        raise HBenchError(f"no epoch logged yet in {', '.join(str(r.path) for r in runs)} (history.jsonl is empty)")
    if not any(len(c.valid) for c in curves):
        known = sorted({k for run in runs for h in run.read_history() for k in h.get("valid", {})})
        if known:
            raise HBenchError(f"no validation metric {metric!r} in these runs (logged: {', '.join(known)})")
    return curves, metric


def _distinct_labels(runs: list, configs: list[dict]) -> list[str]:
    """run_label of each run; where two are equal, the dataset and protocol are added, then the directory."""
    labels = [run_label(c) for c in configs]
    if len(set(labels)) < len(labels):
        labels = [f"{label} · {c['dataset']['name']} {c['protocol']}" for label, c in zip(labels, configs, strict=True)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} · {run.path.name}" for label, run in zip(labels, runs, strict=True)]
    return labels
