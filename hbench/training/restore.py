"""A finished run rebuilt from its directory: config.json + the prepared dataset + checkpoint.pt → the model.

The one place that turns a run directory back into a model, for recommendations, exports and the
embedding figures. The dataset must be the one the run was trained on (same split hash): the checkpoint's
rows are that split's internal ids. Visual models get the exact image features they were trained with.

    run = restore_run("results/tiny/loo/hyperml/3f2a9c81d0-seed0")
    run.recommend(["u17", "u3"], k=10)     # original ids in and out, training items excluded
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hbench.datasets.store import MANIFEST, PreparedDataset, load_prepared
from hbench.errors import HBenchError
from hbench.evaluation.topk import top_k
from hbench.features.dataset import features_root
from hbench.features.extract import MANIFEST as FEATURES_MANIFEST
from hbench.features.extract import FeatureArtifact
from hbench.geometry import Representations
from hbench.models.base import Recommender
from hbench.models.registry import build_model, get_model_class, parse_options
from hbench.paths import prepared_dir
from hbench.runs import RecordedRun, open_run
from hbench.training.trainer import representations
from hbench.ui import QUIET, Feedback


def run_dataset(run: RecordedRun, home: Path | None = None) -> PreparedDataset:
    """The run's prepared dataset: at the path recorded in config.json, else by name under `home`.

    Either must have the run's split hash: popularity counts and checkpoint rows are only meaningful
    for the split the run was trained on.
    """
    expected = run.split_hash
    tried = []
    candidates = ([Path(run.dataset_path)] if run.dataset_path else []) + [prepared_dir(run.dataset, home)]
    for path in dict.fromkeys(candidates):  # the same folder once
        if not (path / MANIFEST).is_file():
            tried.append(f"{path} (not there)")
            continue
        dataset = load_prepared(path)
        if dataset.split_hash == expected:
            return dataset
        tried.append(f"{path} (another split)")
    raise HBenchError(f"cannot find dataset {run.dataset!r} with the run's split {expected[:10]}: tried "
                      f"{'; '.join(tried)}; pass --home where it was prepared")


def run_features(dataset: PreparedDataset, features_id: dict[str, str] | None) -> torch.Tensor | None:
    """The exact image features the run was trained with (visual models), as a float32 tensor."""
    if not features_id:
        return None
    root = features_root(dataset)
    for manifest_path in sorted(root.glob(f"*/{FEATURES_MANIFEST}")) if root.is_dir() else []:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == features_id["key"]:
            array = FeatureArtifact(manifest_path.parent, manifest).features()
            return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    raise HBenchError(f"the {features_id['encoder']} features this run was trained with ({features_id['key'][:10]}) "
                      f"are no longer under {root}; run `hbench features {dataset.name} --encoder {features_id['encoder']}`")


@dataclass(frozen=True, repr=False)
class RestoredRun:
    """A run's configuration, its dataset and its model at the best checkpoint (in eval mode, on the CPU)."""

    path: Path
    config: dict[str, Any]  # config.json as written
    recorded: RecordedRun  # the same, typed
    metrics: dict[str, Any]  # metrics.json; {} for a run that has not finished
    dataset: PreparedDataset
    model: Recommender

    def __repr__(self) -> str:
        r = self.recorded
        shown = ""
        if self.metrics.get("test"):
            name, value = next(iter(self.metrics["test"].items()))
            shown = f", test {name} {value:.4f}"
        return f"<run {r.model} on {r.dataset} ({r.protocol}), seed {r.seed}{shown}: {self.path}>"

    def representations(self) -> Representations:
        return representations(self.model)

    @cached_property
    def user_ids(self) -> np.ndarray:
        """Original user id (string) of every internal id."""
        return pd.read_parquet(self.dataset.path / "users.parquet")["original_id"].astype(str).to_numpy()

    @cached_property
    def item_ids(self) -> np.ndarray:
        """Original item id (string) of every internal id."""
        return pd.read_parquet(self.dataset.path / "items.parquet")["original_id"].astype(str).to_numpy()

    def internal_users(self, users: Sequence[str | int]) -> np.ndarray:
        """Internal ids of original user ids (numbers are taken as their text); unknown ids are an error."""
        index = {u: i for i, u in enumerate(self.user_ids)}
        wanted = [str(u) for u in users]
        unknown = [u for u in wanted if u not in index]
        if unknown:
            raise HBenchError(f"{len(unknown)} user id(s) not in dataset {self.dataset.name!r}: "
                              f"{', '.join(unknown[:5])}{' …' if len(unknown) > 5 else ''}")
        return np.array([index[u] for u in wanted], dtype=np.int64)

    def recommend(self, users: Sequence[str | int] | None = None, k: int = 10) -> pd.DataFrame:
        """Top-`k` items per user (original ids; every user when `users` is None), the user's training items
        excluded: columns user, rank (1 = best), item, score (the model's ranking score, higher is better)."""
        if k < 1:
            raise HBenchError(f"--k must be at least 1, got {k}")
        internal = np.arange(self.dataset.n_users) if users is None else self.internal_users(users)
        ranked = top_k(self.representations(), internal, self.dataset.train_graph, k)
        return ranked.assign(user=self.user_ids[ranked["user"]], item=self.item_ids[ranked["item"]])


def restore_run(path: Path | str, home: Path | None = None, *, feedback: Feedback = QUIET) -> RestoredRun:
    """Rebuild the run's model from config.json and checkpoint.pt (read with `weights_only=True`)."""
    run = open_run(Path(path), need_checkpoint=True)
    config = run.read_config()
    recorded = RecordedRun.from_dict(config, run.path)
    cls = get_model_class(recorded.model)
    options = parse_options(cls, recorded.model_options)
    feedback.log(f"loading dataset {recorded.dataset!r} and the checkpoint of {run.path}")
    dataset = run_dataset(recorded, home)
    model = build_model(cls, options, dataset, dim=int(recorded.train["dim"]),
                        generator=torch.Generator().manual_seed(0),  # every parameter is then overwritten by the checkpoint
                        item_features=run_features(dataset, recorded.features))
    model.load_state_dict(run.load_checkpoint())
    model.eval()
    metrics = run.read_metrics() if run.status() is not None else {}
    return RestoredRun(run.path, config, recorded, metrics, dataset, model)
