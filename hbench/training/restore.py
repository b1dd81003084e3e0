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
from hbench.runs import CHECKPOINT, CONFIG, METRICS, RecordedRun, open_run
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
        """The best checkpoint's user and item points with the geometry that scores them."""
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
        """Top-`k` items per user (original ids; every user when `users` is None, a repeated one once), the
        user's training items excluded: columns user, rank (1 = best), item, score (the model's ranking score,
        higher is better). A user with fewer than `k` unseen items gets all of them."""
        if k < 1:
            raise HBenchError(f"--k must be at least 1, got {k}")
        # Each user once, in first-seen order: a repeated id would be ranked (and its rows written) again.
        internal = (np.arange(self.dataset.n_users) if users is None
                    else self.internal_users(list(dict.fromkeys(str(u) for u in users))))
        ranked = top_k(self.representations(), internal, self.dataset.train_graph, k)
        return ranked.assign(user=self.user_ids[ranked["user"]], item=self.item_ids[ranked["item"]])


def restore_run(path: Path | str, home: Path | None = None, *, feedback: Feedback = QUIET) -> RestoredRun:
    """Rebuild the run's model from config.json and checkpoint.pt (read with `weights_only=True`).

    Every way the files can disagree is a one-line user error naming the file, found before the weights
    are copied: a damaged checkpoint, a config whose dataset sizes are not the dataset's, a checkpoint of
    another dataset or model. A run without metrics.json (still training, or interrupted) and a diverged
    run with a checkpoint are restored with a warning: their best checkpoint so far can be what is wanted.
    """
    run = open_run(Path(path), need_checkpoint=True)
    config = run.read_config()
    recorded = RecordedRun.from_dict(config, run.path)
    cls = get_model_class(recorded.model)
    options = parse_options(cls, recorded.model_options)
    dim = recorded.train.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise HBenchError(f"{run.path / CONFIG} is damaged (train.dim is {dim!r}, not a positive integer); delete the "
                          "run or train it again")
    status = run.status()
    feedback.log(f"loading dataset {recorded.dataset!r} and the checkpoint of {run.path}")
    dataset = run_dataset(recorded, home)
    _check_recorded_sizes(recorded, dataset)
    model = build_model(cls, options, dataset, dim=dim,
                        generator=torch.Generator().manual_seed(0),  # every parameter is then overwritten by the checkpoint
                        item_features=run_features(dataset, recorded.features))
    state = run.load_checkpoint()
    _check_fits(state, model, recorded, dataset, run.path / CHECKPOINT)
    model.load_state_dict(state)
    model.eval()
    metrics = run.read_metrics() if status is not None else {}
    if status is None:
        feedback.warn(f"{run.path} has no {METRICS} (still training, or interrupted): using its best checkpoint so far")
    elif status == "diverged":
        feedback.warn(f"{run.path} diverged ({metrics.get('message') or 'non-finite values'}): using the checkpoint "
                      "of its best epoch before that")
    return RestoredRun(run.path, config, recorded, metrics, dataset, model)


def _check_recorded_sizes(recorded: RecordedRun, dataset: PreparedDataset) -> None:
    """config.json records the dataset's sizes when the run trained: a dataset of other sizes (an edited
    config, another dataset under the same name and split hash) would load the wrong rows."""
    sizes = (recorded.n_users, recorded.n_items)
    if None not in sizes and sizes != (dataset.n_users, dataset.n_items):
        raise HBenchError(f"{recorded.path / CONFIG} records {sizes[0]} users × {sizes[1]} items but dataset "
                          f"{dataset.name!r} at {dataset.path} has {dataset.n_users} users × {dataset.n_items} "
                          "items; the config belongs to another dataset: train the run again")


def _check_fits(state: dict[str, torch.Tensor], model: Recommender, recorded: RecordedRun, dataset: PreparedDataset,
                checkpoint: Path) -> None:
    """Refuse a checkpoint of another model or dataset with a sentence, not load_state_dict's size mismatch."""
    expected = model.state_dict()
    again = "copy the run's own checkpoint back, or train the run again (`hbench train ... --force`)"
    if set(state) != set(expected):
        odd = sorted(set(state) ^ set(expected))
        raise HBenchError(f"{checkpoint} is not a checkpoint of a {recorded.model} model like config.json's "
                          f"({', '.join(odd[:3])}{' …' if len(odd) > 3 else ''} differ); {again}")
    wrong = [name for name in expected if tuple(state[name].shape) != tuple(expected[name].shape)]
    if not wrong:
        return
    trained = _trained_sizes(state, expected, dataset)
    if trained is not None and trained != (dataset.n_users, dataset.n_items):
        raise HBenchError(f"{checkpoint} was trained on {trained[0]} users × {trained[1]} items but dataset "
                          f"{dataset.name!r} has {dataset.n_users} users × {dataset.n_items} items; {again}")
    name = wrong[0]
    raise HBenchError(f"{checkpoint} does not fit the {recorded.model} model of config.json ({name} is "
                      f"{tuple(state[name].shape)} in the file, {tuple(expected[name].shape)} expected); {again}")


def _trained_sizes(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor],
                   dataset: PreparedDataset) -> tuple[int, int] | None:
    """(users, items) the checkpoint was trained on, read from the rows of the tensors that have one row per
    user and per item in this dataset's model; None when the model has no such pair of tensors."""
    users = items = None
    for name, tensor in expected.items():
        if tensor.dim() == 0 or state[name].dim() != tensor.dim():
            continue
        if users is None and tensor.shape[0] == dataset.n_users:
            users = int(state[name].shape[0])
        elif items is None and tensor.shape[0] == dataset.n_items:
            items = int(state[name].shape[0])
    return None if users is None or items is None else (users, items)
