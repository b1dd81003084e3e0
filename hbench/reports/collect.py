"""Read run directories into one flat frame: a row per finished run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.runs import find_runs, run_variants, selected_groups

# Options that never change what a row means, so they are left out of its label.
_UNLABELLED_TRAIN_KEYS = {"dataset", "seed", "protocol", "metric", "ks"}


def collect_runs(root: Path, *, selected_only: bool = False) -> pd.DataFrame:
    """One row per finished (completed or diverged) run below `root`, metrics flattened as `valid/…`, `test/…`;
    runs of a sweep's named variants (ablations) carry the variant's name.

    `selected_only`: below a sweep directory, only the configurations the sweep selected on validation.
    """
    if not Path(root).exists():
        raise HBenchError(f"results directory {root} does not exist")
    selections = selected_groups(Path(root)) if selected_only else {}
    variants = run_variants(Path(root))
    rows = []
    for run_dir in find_runs(Path(root)):
        config, metrics = run_dir.read_config(), run_dir.read_metrics()
        variant = variants.get(run_dir.path.resolve())
        sweep = next((groups for path, groups in selections.items() if path in run_dir.path.parents), None)
        if sweep is not None and config["group_hash"] not in sweep:
            continue
        row = {
            "path": str(run_dir.path),
            "dataset": config["dataset"]["name"],
            "protocol": config["protocol"],
            "split_hash": config["dataset"]["split_hash"],
            "n_users": config["dataset"].get("n_users"),
            "negatives": config["dataset"].get("negatives"),  # sampled per user; absent from older runs
            "model": config["model"],
            "group_hash": config["group_hash"],
            "settings": " ".join(run_settings(config)),
            # an ablation variant's name, and the options it sets (its label says them in words)
            "variant": variant.name if variant else "",
            "variant_options": " ".join(variant.options) if variant else "",
            "seed": config["train"]["seed"],
            "status": metrics["status"],
            "selection_metric": metrics.get("selection_metric", config["metric"]),
            "train_seconds": metrics.get("train_seconds"),
            "eval_seconds": metrics.get("eval_seconds"),
            "time_to_quality_seconds": metrics.get("time_to_quality_seconds"),  # absent from older runs
        }
        row.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
        row.update({f"test/{k}": v for k, v in metrics.get("test", {}).items()})
        rows.append(row)
    if not rows:
        raise HBenchError(f"no finished runs under {root} (a run directory holds metrics.json and config.json)")
    return pd.DataFrame(rows)


def run_settings(config: dict) -> list[str]:
    """Whatever differs from the defaults, as sorted `key=value` strings, e.g. `["c=0.5", "gamma=0"]`."""
    from hbench.models.registry import available_models, parse_options

    parts = []
    cls = available_models().get(config["model"])
    if cls is not None:
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Options)}
        parts += [f"{k}={v}" for k, v in sorted(config["model_options"].items()) if defaults.get(k) != v]
        try:  # the rate this configuration trains with by default (it may depend on an option)
            default_lr = cls.default_lr_for(parse_options(cls, config["model_options"]))
        except HBenchError:  # options of another hbench version: compare with the model's plain default
            default_lr = cls.default_lr
        if config["lr"] != default_lr:
            parts.append(f"lr={config['lr']:g}")
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    if cls is not None:  # runs record the batch size they resolved; the model's default is not a setting
        train_defaults["batch_size"] = cls.default_batch_size
    parts += [
        f"{k}={v}" for k, v in sorted(config["train"].items())
        if k not in _UNLABELLED_TRAIN_KEYS and k != "lr" and train_defaults.get(k) != v
    ]
    return sorted(parts)
