"""Typed run configuration and its identity (hash)."""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from hbench.atomic import sha256_json
from hbench.errors import HBenchError


def type_name(hint: Any) -> str:
    """How a declared type reads in help and errors: `float`, `hinge|bpr`, `float | None`."""
    origin = get_origin(hint)
    if origin is Literal:
        return "|".join(map(str, get_args(hint)))
    if origin in (Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in get_args(hint))
    if origin is tuple:
        return f"comma-separated {type_name(get_args(hint)[0])}s"
    return getattr(hint, "__name__", str(hint))


def coerce_setting(value: Any, hint: Any, name: str) -> Any:
    """`value` as the declared type `hint`, or an HBenchError naming the setting.

    Strings (command-line flags) are parsed; an int where a float is declared becomes a float. The
    widening matters beyond tidiness: a run's identity is the hash of its settings in JSON, where `2` and
    `2.0` differ, so `--c 2` on the command line and `c = 2` in a spec file must both store `2.0` to name
    the same run directory.
    """
    origin = get_origin(hint)
    args = get_args(hint)
    fail = HBenchError(f"{name} expects {type_name(hint)}, got {value!r}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{name}: unions other than `X | None` are not supported")
        return coerce_setting(value, inner[0], name)
    if origin is Literal:
        if value not in args:
            raise fail
        return value
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise fail
        return tuple(coerce_setting(item, args[0], name) for item in items)
    if isinstance(value, str):
        text = value.strip()
        try:
            if hint is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            return hint(text) if hint in (int, float) else value
        except ValueError:
            raise fail from None
    # bool is a subclass of int: True must not pass for a count or a rate.
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    raise fail


def flat_items(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested settings as (`a.b.c`, value) pairs, in order."""
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            items += flat_items(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def coerce_fields(cls: type, values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every entry of `values` (keyed by field name of dataclass `cls`) as its declared type."""
    hints = typing.get_type_hints(cls)
    return {key: coerce_setting(value, hints[key], f"{where}{key}") for key, value in values.items()}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run besides the model's own options.

    `lr=None` and `batch_size=None` take the model's recommended defaults; `protocol=None` the dataset's default;
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
    batch_size: int | None = None
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

    def __post_init__(self) -> None:
        # Settings arrive from flags, TOML, YAML and Python; one typed form keeps the run hash stable.
        for key, value in coerce_fields(TrainConfig, asdict(self)).items():
            object.__setattr__(self, key, value)

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
