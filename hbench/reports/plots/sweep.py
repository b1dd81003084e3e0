"""A metric against one varying setting: the numbers behind `hbench plot sweep`.

Runs are read like `hbench table` reads them (finished or diverged runs below a results directory). Each
run's *parameters* are its model options, its train settings (seed and dataset name left out) and its
resolved learning rate. One line is one group of runs equal in everything but the axis and the seed
(and in dataset, split and protocol); one point is one axis value of a line:

    mean = (1/n) Σ_s m_s            over the n seeds that completed
    std  = sqrt(Σ_s (m_s − mean)² / (n − 1))   (sample std, as in the tables; 0 when n = 1)
    band = [min_s m_s, max_s m_s]  (`minmax`)   or   [mean − std, mean + std]  (`std`)

Diverged runs have no metric: they are counted per point, never averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hbench.errors import HBenchError
from hbench.reports.collect import collect_runs
from hbench.runs import RecordedRun, RunDirectory

STAGES = ("valid", "test")
BANDS = ("minmax", "std", "none")
BAND_LEGEND = {"minmax": "min–max over seeds", "std": "±1 std over seeds (sample)", "none": ""}
# Train settings that never define an axis: the dataset name and the seed (seeds are what a band spans);
# `lr` there is the requested value (maybe null), the resolved one is the run's top-level `lr`.
_NOT_PARAMETERS = {"dataset", "seed", "lr"}


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_parameters(run: RecordedRun) -> dict[str, Any]:
    """Everything a sweep may vary for one run: train settings, resolved lr, model options (by name)."""
    params = {k: _hashable(v) for k, v in run.train.items() if k not in _NOT_PARAMETERS}
    params["lr"] = run.lr
    params.update({k: _hashable(v) for k, v in run.model_options.items()})
    return params


def sweep_runs(results: Path) -> pd.DataFrame:
    """collect_runs(results) plus a `parameters` column (dict per run)."""
    frame = collect_runs(Path(results))
    frame["parameters"] = [run_parameters(RunDirectory(Path(p)).read_run()) for p in frame["path"]]
    return frame


def varying_parameters(parameters: Sequence[dict[str, Any]]) -> list[str]:
    """Parameter names taking two or more values among the runs that have them (models differ in options), sorted."""
    names = sorted({k for p in parameters for k in p})
    return [k for k in names if len({repr(p[k]) for p in parameters if k in p}) > 1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Sweep:
    """Per-point statistics in `points`: line, stage, x, n (completed runs), n_diverged, mean, std, min, max,
    lower, upper; lines in legend order; `categorical` when the axis takes non-numeric values (then `x` is
    the value's position in `categories`)."""

    axis: str
    metric: str
    stages: tuple[str, ...]
    band: str
    points: pd.DataFrame
    lines: list[str]
    categorical: bool = False
    categories: list[str] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # model → runs without the axis parameter
    title: str = ""  # what all lines share: dataset and protocol

    def line(self, label: str, stage: str) -> pd.DataFrame:
        rows = self.points[(self.points["line"] == label) & (self.points["stage"] == stage)]
        return rows.sort_values("x")


def _selection_metric(frame: pd.DataFrame, metric: str | None, stages: Sequence[str]) -> str:
    if metric is None:
        chosen = sorted(set(frame["selection_metric"].dropna()))
        if len(chosen) != 1:
            raise HBenchError(f"these runs select on different metrics ({', '.join(chosen)}); pass --metric")
        metric = chosen[0]
    for stage in stages:
        column = f"{stage}/{metric}"
        if column not in frame.columns or frame[column].isna().all():
            available = sorted(c.split("/", 1)[1] for c in frame.columns if c.startswith(f"{stage}/"))
            raise HBenchError(f"no {stage} metric {metric!r} in these runs (available: {', '.join(available) or 'none'})")
    return metric


def _line_labels(keys: list[tuple], shared_fields: dict[str, set]) -> dict[tuple, str]:
    """model, then the dataset/protocol when they differ between lines, then `(k=v ...)` for the parameters
    that differ between lines of the same model."""
    labels = {}
    for key in keys:
        dataset, protocol, _, model, params = key
        same_model = [dict(k[4]) for k in keys if k[3] == model]
        varying = [k for k in varying_parameters(same_model) if k in dict(params)]
        label = model
        if len(shared_fields["dataset"]) > 1 or len(shared_fields["split"]) > 1:
            label += f" {dataset}"
        if len(shared_fields["protocol"]) > 1:
            label += f" {protocol}"
        if varying:
            label += " (" + " ".join(f"{k}={dict(params)[k]}" for k in varying) + ")"
        labels[key] = label
    # Lines equal in all of the above differ in their split only (same dataset name, another preparation).
    counts = pd.Series(list(labels.values())).value_counts()
    return {key: f"{label} [split {key[2][:6]}]" if counts[label] > 1 else label for key, label in labels.items()}


def aggregate_sweep(
    runs: pd.DataFrame,
    axis: str,
    *,
    metric: str | None = None,
    stages: Sequence[str] = STAGES,
    band: str = "minmax",
) -> Sweep:
    """Mean and band of `metric` per (line, stage, axis value) over seeds; see the module docstring."""
    if band not in BANDS:
        raise HBenchError(f"--band must be one of {', '.join(BANDS)}, not {band!r}")
    for stage in stages:
        if stage not in STAGES:
            raise HBenchError(f"--stage must be valid, test or both, not {stage!r}")
    parameters = list(runs["parameters"])
    varying = varying_parameters(parameters)
    if not any(axis in p for p in parameters):
        raise HBenchError(f"unknown axis {axis!r}: no run has such a setting; settings that vary here: "
                          f"{', '.join(varying) or 'none'}")
    has_axis = np.array([axis in p for p in parameters])
    kept = runs[has_axis].copy()
    values = [p[axis] for p in kept["parameters"]]
    if len({repr(v) for v in values}) < 2:
        raise HBenchError(f"axis {axis!r} takes one value ({values[0]}) in these runs; settings that vary here: "
                          f"{', '.join(v for v in varying if v != axis) or 'none'}")
    left_out = runs[~has_axis]["model"].value_counts().to_dict()
    metric = _selection_metric(kept, metric, stages)

    categorical = not all(_is_number(v) for v in values)
    categories = sorted({str(v) for v in values}) if categorical else []
    kept["x"] = [categories.index(str(v)) if categorical else float(v) for v in values]
    kept["line_key"] = [
        (row.dataset, row.protocol, row.split_hash, row.model,
         tuple(sorted((k, v) for k, v in row.parameters.items() if k != axis)))
        for row in kept.itertuples()
    ]
    keys = list(dict.fromkeys(sorted(kept["line_key"], key=repr)))
    shared = {"dataset": set(kept["dataset"]), "protocol": set(kept["protocol"]), "split": set(kept["split_hash"])}
    labels = _line_labels(keys, shared)

    rows = []
    for key in keys:
        group = kept[kept["line_key"] == key]
        for stage in stages:
            column = f"{stage}/{metric}"
            for x, point in group.groupby("x", sort=True):
                completed = point[(point["status"] == "completed") & point[column].notna()][column].to_numpy(float)
                n = len(completed)
                mean = float(completed.mean()) if n else math.nan
                std = float(completed.std(ddof=1)) if n > 1 else 0.0 if n == 1 else math.nan
                low, high = (float(completed.min()), float(completed.max())) if n else (math.nan, math.nan)
                lower, upper = {"minmax": (low, high), "std": (mean - std, mean + std),
                                "none": (math.nan, math.nan)}[band]
                rows.append({"line": labels[key], "stage": stage, "x": x, "n": n, "n_diverged": len(point) - n,
                             "mean": mean, "std": std, "min": low, "max": high, "lower": lower, "upper": upper})
    title_parts = [", ".join(sorted(shared["dataset"])), ", ".join(sorted(shared["protocol"]))]
    return Sweep(axis=axis, metric=metric, stages=tuple(stages), band=band, points=pd.DataFrame(rows),
                 lines=[labels[k] for k in keys], categorical=categorical, categories=categories,
                 left_out=left_out, title=" · ".join(title_parts))


def use_log_scale(x: np.ndarray, scale: str) -> bool:
    """`log` or `linear` as asked; `auto`: log when every value is positive and they span a decade or more."""
    if scale not in ("auto", "linear", "log"):
        raise HBenchError(f"--xscale must be auto, linear or log, not {scale!r}")
    if scale != "auto":
        if scale == "log" and not (np.asarray(x) > 0).all():
            raise HBenchError("--xscale log needs positive axis values")
        return scale == "log"
    x = np.asarray(x, dtype=float)
    return bool(len(x) and (x > 0).all() and x.max() / x.min() >= 10.0)
