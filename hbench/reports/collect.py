"""Read run directories into one flat frame: a row per finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hbench.errors import HBenchError
from hbench.experiments.tune import SEARCH_STAGE, TUNE_LOG, model_budget_text
from hbench.models.registry import non_default_settings
from hbench.runs import find_runs, run_variants, selected_groups


def collect_runs(root: Path, *, selected_only: bool = False) -> pd.DataFrame:
    """One row per finished (completed or diverged) run below `root`, metrics flattened as `valid/…`, `test/…`;
    runs of a sweep's named variants (ablations) carry the variant's name.

    `selected_only`: below a sweep directory, only the configurations the sweep selected on validation;
    below an `hbench tune` output, only its seeds stage (the search's trials are the record of how the
    winners were found, not results) unless `root` is the search stage itself.
    """
    if not Path(root).exists():
        raise HBenchError(f"results directory {root} does not exist")
    selections = selected_groups(Path(root)) if selected_only else {}
    variants = run_variants(Path(root))
    budgets: dict[Path, dict[str, Any] | None] = {}
    rows = []
    for run_dir in find_runs(Path(root)):
        run, metrics = run_dir.read_run(), run_dir.read_metrics()
        variant = variants.get(run_dir.path.resolve())
        sweep = next((groups for path, groups in selections.items() if path in run_dir.path.parents), None)
        if sweep is not None and run.group_hash not in sweep:
            continue
        tuned = _tune_folder(run_dir.path, budgets)
        if selected_only and tuned is not None:
            search = tuned / SEARCH_STAGE
            if search in run_dir.path.resolve().parents and search not in (here := Path(root).resolve(), *here.parents):
                continue
        row = {
            "path": str(run_dir.path),
            "dataset": run.dataset,
            "protocol": run.protocol,
            "split_hash": run.split_hash,
            "n_users": run.n_users,
            "negatives": run.negatives,  # sampled per user; absent from older runs
            "dim": run.train.get("dim"),  # embedding dimension (papers' numbers hold for theirs only)
            "model": run.model,
            "group_hash": run.group_hash,
            "settings": " ".join(non_default_settings(run)),
            # an ablation variant's name, and the options it sets (its label says them in words)
            "variant": variant.name if variant else "",
            "variant_options": " ".join(variant.options) if variant else "",
            "seed": run.seed,
            "status": metrics["status"],
            "selection_metric": metrics.get("selection_metric", run.metric),
            "train_seconds": metrics.get("train_seconds"),
            "eval_seconds": metrics.get("eval_seconds"),
            "time_to_quality_seconds": metrics.get("time_to_quality_seconds"),  # absent from older runs
            "tuning": model_budget_text(budgets[tuned] if tuned is not None else None, run.model),
        }
        row.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
        row.update({f"test/{k}": v for k, v in metrics.get("test", {}).items()})
        rows.append(row)
    if not rows:
        raise HBenchError(f"no finished runs under {root} (a run directory holds metrics.json and config.json)")
    return pd.DataFrame(rows)


def _tune_folder(run_path: Path, cache: dict[Path, dict[str, Any] | None]) -> Path | None:
    """The `hbench tune` output a run lies in (its nearest ancestor holding a tune.json), or None; `cache`
    gets each folder's parsed tune.json (None where there is none)."""
    for folder in run_path.resolve().parents:
        if folder not in cache:
            log = folder / TUNE_LOG
            cache[folder] = json.loads(log.read_text()) if log.is_file() else None
        if cache[folder] is not None:
            return folder
    return None

