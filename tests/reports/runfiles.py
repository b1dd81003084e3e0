"""Hand-written run directories in the layout of hbench.runs, with numbers chosen by the test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd

from hbench.models.registry import available_models, parse_options


def default_lr(model: str, options: dict | None = None) -> float:
    """The model's own default rate, as a run trained without --lr records it (labels show only departures)."""
    cls = available_models().get(model)
    return cls.default_lr_for(parse_options(cls, options or {})) if cls is not None else 1e-3


def write_run(root: Path, model: str, seed: int, *, per_user: pd.DataFrame | None = None, test: dict | None = None,
              dataset: str = "toy", protocol: str = "loo", split: str = "split-one", group: str | None = None,
              options: dict | None = None, status: str = "completed", dataset_info: dict | None = None,
              dim: int = 64) -> Path:
    """<root>/<dataset>/<protocol>/<model>/<group[:10]>-seed<seed> with config.json, metrics.json and, when
    given, per_user.parquet; test metrics default to the user means of `per_user` (as the trainer writes)."""
    group = group or hashlib.sha256(json.dumps([model, split, options or {}], sort_keys=True).encode()).hexdigest()
    path = root / dataset / protocol / model / f"{group[:10]}-seed{seed}"
    path.mkdir(parents=True)
    config = {"model": model, "model_options": options or {}, "lr": default_lr(model, options), "protocol": protocol, "metric": "ndcg@10",
              "train": {"seed": seed, "dim": dim, "dataset": dataset},
              "dataset": {"name": dataset, "split_hash": split, **(dataset_info or {})}, "group_hash": group, "config_hash": f"{group}{seed}"}
    (path / "config.json").write_text(json.dumps(config))
    if per_user is not None:
        per_user.to_parquet(path / "per_user.parquet", index=False)
        if test is None:
            test = {c: float(per_user[c].mean()) for c in per_user.columns if c not in ("user", "n_targets")}
    metrics = {"status": status, "selection_metric": "ndcg@10", "train_seconds": 3.0, "eval_seconds": 1.0,
               "valid": {}, "test": (test or {}) if status == "completed" else {}}
    (path / "metrics.json").write_text(json.dumps(metrics))
    return path
