"""Read run directories into one flat frame: a row per finished run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hbench.errors import HBenchError
from hbench.models.registry import non_default_settings
from hbench.runs import find_runs, run_variants, selected_groups


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
        run, metrics = run_dir.read_run(), run_dir.read_metrics()
        variant = variants.get(run_dir.path.resolve())
        sweep = next((groups for path, groups in selections.items() if path in run_dir.path.parents), None)
        if sweep is not None and run.group_hash not in sweep:
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
        }
        row.update({f"valid/{k}": v for k, v in metrics.get("valid", {}).items()})
        row.update({f"test/{k}": v for k, v in metrics.get("test", {}).items()})
        rows.append(row)
    if not rows:
        raise HBenchError(f"no finished runs under {root} (a run directory holds metrics.json and config.json)")
    return pd.DataFrame(rows)
