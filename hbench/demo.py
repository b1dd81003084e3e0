"""The zero-network demo: the whole main job on a synthetic fashion dataset, in a few minutes on CPU.

prepare (generated interactions + procedurally drawn item pictures) → features (the offline
EfficientNet-Lite0 encoder) → train every demo model over the seeds → tables.
"""

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
DEMO_ENCODER = "efficientnet_lite0"
DEMO_MODELS = ("pop", "bpr", "vbpr", "cml", "hyperml", "vacf", "hvacf")


def run_demo(
    out: Path,
    *,
    home: Path | None = None,
    models: Sequence[str] = DEMO_MODELS,
    seeds: Sequence[int] = (0, 1),
    epochs: int = 40,
    feedback: Feedback = QUIET,
) -> list[Table]:
    """prepare → features → train `models` over `seeds` → tables of the runs under `out`."""
    from hbench.features.dataset import dataset_features

    dataset = prepare_dataset(DEMO_DATASET, home=home, feedback=feedback)
    dataset_features(dataset, DEMO_ENCODER, feedback=feedback)
    for model in models:
        for seed in seeds:
            config = TrainConfig(dataset=str(dataset.path), dim=32, epochs=epochs, batch_size=512, seed=seed)
            train(model, config, out=out, home=home, feedback=feedback)
    return build_tables(collect_runs(out))
