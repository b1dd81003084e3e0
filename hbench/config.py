"""Typed run configuration and its identity (hash)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hbench.atomic import sha256_json


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run besides the model's own options.

    `lr=None` takes the model's recommended default; `protocol=None` the dataset's default;
    `metric=None` the protocol's selection metric. `device` and output locations do not change results
    and are not part of the run's identity. `optimizer`: `sparse` updates only the embedding rows a batch
    touched (lazy Riemannian Adam, fast on CPU); `dense` updates every row every step (Riemannian Adam as
    in the papers' code). `features` names the image encoder whose `hbench features` output visual models
    use (None: the dataset's only extracted one).
    """

    dataset: str
    protocol: str | None = None
    dim: int = 64
    lr: float | None = None
    batch_size: int = 1024
    epochs: int = 100
    patience: int = 5
    eval_every: int = 1
    negatives: int = 1
    seed: int = 0
    ks: tuple[int, ...] = (10, 20)
    metric: str | None = None
    optimizer: str = "sparse"
    features: str | None = None
    device: str = "auto"

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("device")
        return data


@dataclass(frozen=True)
class ResolvedRun:
    """The frozen description written to `config.json` of a run directory."""

    model: str
    model_options: dict[str, Any]
    train: dict[str, Any]
    dataset: dict[str, Any]
    protocol: str
    metric: str
    lr: float
    hbench_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        """Identity of the exact run (seed included)."""
        return sha256_json(self._identity(with_seed=True))

    @property
    def group_hash(self) -> str:
        """Identity of the configuration across seeds: runs with equal group hashes are one table row."""
        return sha256_json(self._identity(with_seed=False))

    def _identity(self, *, with_seed: bool) -> dict[str, Any]:
        train = dict(self.train)
        if not with_seed:
            train.pop("seed")
        return {
            "model": self.model,
            "model_options": self.model_options,
            "train": train,
            "split_hash": self.dataset["split_hash"],
            "features": self.dataset.get("features"),
            "protocol": self.protocol,
            "metric": self.metric,
            "lr": self.lr,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config_hash": self.config_hash, "group_hash": self.group_hash}
