"""The zero-network demo: the whole pipeline on a synthetic hierarchical dataset, in a few minutes on CPU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hbench.config import TrainConfig
from hbench.datasets.prepare import prepare_dataset
from hbench.reports.collect import collect_runs
from hbench.reports.tables import Table, build_tables
from hbench.training.trainer import train
from hbench.ui import QUIET, Feedback

DEMO_DATASET = "synthetic-fashion"
DEMO_MODELS = ("pop", "bpr", "cml", "hyperml")


def run_demo(
    out: Path,
    *,
    home: Path | None = None,
    seeds: Sequence[int] = (0, 1),
    epochs: int = 40,
    feedback: Feedback = QUIET,
) -> list[Table]:
    """prepare → train every demo model over `seeds` → tables of the runs under `out`."""
    dataset = prepare_dataset(DEMO_DATASET, home=home, feedback=feedback)
    for model in DEMO_MODELS:
        for seed in seeds:
            config = TrainConfig(dataset=str(dataset.path), dim=32, epochs=epochs, batch_size=512, seed=seed)
            train(model, config, out=out, home=home, feedback=feedback)
    return build_tables(collect_runs(out))
