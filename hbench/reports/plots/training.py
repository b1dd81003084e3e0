"""Per-epoch curves of one or more runs (history.jsonl): the numbers behind `hbench plot training`.

Runs equal in everything but the seed form one configuration, drawn as one line: at each epoch the mean
over the seeds that reached it, with a band from the smallest to the largest of them (early stopping ends
seeds at different epochs, so the number of seeds behind a point can fall towards the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hbench.errors import HBenchError
from hbench.models.registry import non_default_settings
from hbench.reports.plots.rundirs import run_label, runs_below
from hbench.runs import RecordedRun


@dataclass(frozen=True)
class TrainingCurve:
    label: str  # model (settings) seed N
    configuration: str  # model (settings): the label without the seed
    epochs: np.ndarray  # every logged epoch
    loss: np.ndarray  # mean training loss of each epoch
    valid_epochs: np.ndarray  # the epochs that were validated
    valid: np.ndarray  # the metric at those epochs
    best_epoch: int | None  # from metrics.json once the run has finished
    status: str  # completed | diverged | running (no metrics.json yet)
    model: str = ""
    shared_settings: tuple[str, ...] = ()  # settings every plotted run shares (left out of `configuration`)


@dataclass(frozen=True)
class SeedBand:
    """Mean, min and max over seeds at each epoch where at least one seed has a value; n seeds each."""

    epochs: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n: np.ndarray


@dataclass(frozen=True)
class ConfigurationCurves:
    """The runs of one configuration (one line of the figure)."""

    configuration: str
    model: str
    runs: list[TrainingCurve]
    loss: SeedBand
    valid: SeedBand

    @property
    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def seed_band(series: list[tuple[np.ndarray, np.ndarray]]) -> SeedBand:
    """(epochs, values) of each seed → mean/min/max per epoch over the seeds that have that epoch."""
    epochs = np.array(sorted({int(e) for x, _ in series for e in x}), dtype=int)
    table = np.full((len(series), len(epochs)), np.nan)
    position = {e: i for i, e in enumerate(epochs)}
    for row, (x, y) in enumerate(series):
        table[row, [position[int(e)] for e in x]] = y
    n = (~np.isnan(table)).sum(axis=0)
    with np.errstate(all="ignore"):  # epochs no seed reached do not occur: every column has a value
        return SeedBand(epochs, np.nanmean(table, axis=0), np.nanmin(table, axis=0), np.nanmax(table, axis=0), n)


def group_by_configuration(curves: list[TrainingCurve]) -> list[ConfigurationCurves]:
    """One entry per configuration, in the order configurations first appear."""
    groups: dict[str, list[TrainingCurve]] = {}
    for curve in curves:
        groups.setdefault(curve.configuration, []).append(curve)
    return [ConfigurationCurves(name, runs[0].model, runs,
                                seed_band([(r.epochs, r.loss) for r in runs]),
                                seed_band([(r.valid_epochs, r.valid) for r in runs if len(r.valid)]))
            for name, runs in groups.items()]


def training_curves(paths: list[Path], metric: str | None = None) -> tuple[list[TrainingCurve], str]:
    """Curves of every run named (or found below a named directory), and the validation metric shown.

    The metric defaults to the runs' own selection metric; runs that select on different metrics need
    an explicit one. Runs with no epoch logged yet are skipped; none at all is an error.
    """
    runs = runs_below(paths)
    configs = [run.read_run() for run in runs]
    if metric is None:
        chosen = sorted({c.metric for c in configs})
        if len(chosen) > 1:
            raise HBenchError(f"these runs select on different metrics ({', '.join(chosen)}); pass --metric")
        metric = chosen[0]
    labels = _distinct_labels(runs, configs)
    settings = [set(non_default_settings(c)) for c in configs]
    shared = set.intersection(*settings) if len(settings) > 1 else set()
    configurations = _distinct_labels(runs, configs, seed=False, leave_out=shared)
    curves = []
    for run, config, label, configuration in zip(runs, configs, labels, configurations, strict=True):
        history = run.read_history()
        if not history:
            continue
        validated = [h for h in history if metric in h.get("valid", {})]
        metrics = run.read_metrics() if run.status() else {}
        curves.append(TrainingCurve(
            label=label,
            configuration=configuration,
            model=config.model,
            shared_settings=tuple(sorted(shared)),
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


def _configuration_label(config: RecordedRun, leave_out: set[str]) -> str:
    own = [s for s in non_default_settings(config) if s not in leave_out]
    return config.model + (f" ({' '.join(own)})" if own else "")


def _distinct_labels(runs: list, configs: list[RecordedRun], *, seed: bool = True, leave_out: set[str] = frozenset()) -> list[str]:
    """run_label of each run (of each configuration without `seed`); where two runs of different
    configurations share one, the dataset and protocol are added, then the directory (of a run) or the
    group hash (of a configuration)."""
    labels = [run_label(c) if seed else _configuration_label(c, set(leave_out)) for c in configs]
    if not seed and len({(c.dataset, c.protocol) for c in configs}) > 1:
        labels = [f"{label} · {c.dataset} {c.protocol}" for label, c in zip(labels, configs, strict=True)]

    def clash(names: list[str]) -> bool:
        owners: dict[str, set[str]] = {}
        for name, c in zip(names, configs, strict=True):
            owners.setdefault(name, set()).add(c.group_hash if not seed else str(id(c)))
        return any(len(v) > 1 for v in owners.values())

    if clash(labels):
        labels = [f"{label} · {c.dataset} {c.protocol}" for label, c in zip(labels, configs, strict=True)]
    if clash(labels):
        labels = [f"{label} · {run.path.name}" if seed else f"{label} [{c.group_hash[:6]}]"
                  for label, run, c in zip(labels, runs, configs, strict=True)]
    return labels
