"""Typed run configuration and its identity (hash)."""

from __future__ import annotations

import dataclasses
import math
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


@dataclass(frozen=True)
class Range:
    """The values a numeric setting admits: `at_least` <= value (or `above` < value) <= `at_most`.

    Declared once per setting (in its dataclass field's metadata under "range") and checked by
    `check_ranges`, whichever way the value arrived (flag, spec file, Python). Floats must also be finite.
    """

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None

    def admits(self, value: float) -> bool:
        return ((self.at_least is None or value >= self.at_least) and (self.above is None or value > self.above)
                and (self.at_most is None or value <= self.at_most))

    def __str__(self) -> str:
        parts = []
        if self.above is not None:
            parts.append("positive" if self.above == 0 else f"greater than {_number(self.above)}")
        if self.at_least is not None:
            parts.append("non-negative" if self.at_least == 0 else f"at least {_number(self.at_least)}")
        if self.at_most is not None:
            parts.append(f"at most {_number(self.at_most)}")
        return " and ".join(parts) or "any number"


def _number(value: float) -> str:
    return str(value)  # as the user would type it back: 0.0 stays a float, 16384 an int


def setting(default: Any, *, range: Range | None = None, flag: str | None = None, **metadata: Any) -> Any:  # noqa: A002
    """A dataclass field of a setting, with the range it admits and the flag that sets it (default --name)."""
    return field(default=default, metadata={**metadata, "range": range, "flag": flag})


def flag_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("flag") or f"--{f.name.replace('_', '-')}"


def check_ranges(settings: Any) -> None:
    """Every numeric field of the dataclass instance `settings` within its declared range, and finite.

    Tuples are checked element by element; None (an unset optional) passes.
    """
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        bounds = f.metadata.get("range")
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise HBenchError(f"{flag_name(f)} must be a finite number, got {item}")
            if bounds is not None and not bounds.admits(item):
                raise HBenchError(f"{flag_name(f)} must be {bounds}, got {_number(item)}")


def coerce_fields(cls: type, values: dict[str, Any], where: str = "") -> dict[str, Any]:
    """Every entry of `values` (keyed by field name of dataclass `cls`) as its declared type."""
    hints = typing.get_type_hints(cls)
    return {key: coerce_setting(value, hints[key], f"{where}{key}") for key, value in values.items()}


MAX_DIM = 16384


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
    # Bounded so that a typo fails here, not as an allocation of n_users x dim floats.
    dim: int = setting(64, range=Range(at_least=1, at_most=MAX_DIM))
    lr: float | None = setting(None, range=Range(above=0))
    batch_size: int | None = setting(None, range=Range(at_least=1, at_most=1 << 24))
    epochs: int = setting(200, range=Range(at_least=1))
    # Validate every 5 epochs, stop after 4 validations (20 epochs) without a new best. Every epoch with
    # patience 5 stopped slow learners on noise: on amazon-cd one validation item per user gives recall@20 a
    # standard error of about 0.0016, above HyperML's gain per epoch, and HGCF's first epochs dip below its
    # first validation (results/reference/validation-schedule/).
    patience: int = setting(4, range=Range(at_least=1))
    eval_every: int = setting(5, range=Range(at_least=1))
    negatives: int = setting(1, range=Range(at_least=1, at_most=1 << 16))
    seed: int = setting(0, range=Range(at_least=0, at_most=2**63 - 1))
    ks: tuple[int, ...] = setting((10, 20), range=Range(at_least=1), flag="--k")
    metric: str | None = None
    optimizer: str = "sparse"
    features: str | None = None
    # Pruning thresholds of a search trial (hbench.experiments.tpe): after the k-th validation, stop when the
    # best validation value so far is below the k-th entry. None: never pruned.
    prune_below: tuple[float, ...] | None = setting(None, range=Range(at_least=0))
    # Evaluate the test split at every validation point into the run's test_curve.jsonl: a protocol
    # measurement (`hbench table --protocol-gap`), read by nothing that selects (early stopping, pruning,
    # sweeps, tune, default tables). Kept out of the group hash (`ResolvedRun._identity`).
    record_test_curve: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        # Settings arrive from flags, TOML, YAML and Python; one typed form keeps the run hash stable.
        for key, value in coerce_fields(TrainConfig, asdict(self)).items():
            object.__setattr__(self, key, value)
        check_ranges(self)

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("device")
        if data["prune_below"] is None:  # runs from before pruning existed keep their identity
            data.pop("prune_below")
        if not data["record_test_curve"]:  # runs without a curve (and from before it existed) keep theirs
            data.pop("record_test_curve")
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
    # Model options left out of the identity: options added to a model after runs of it were recorded, at
    # the default that reproduces those runs (`hbench.models.base.option(added_later=True)`). Without this, a
    # new option would give every earlier run a new hash, and a resumed sweep or tune would train them again.
    identity_exempt: tuple[str, ...] = ()

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
            # Recording the test curve adds a file to the run and changes nothing it trains or selects: the
            # same configuration, one table row, one run folder (named by this hash). It stays in the
            # exact run's hash (config_hash) and in config.json, so an interrupted run does not resume
            # into a curve that lacks its first points; a finished run without the curve asked to record
            # one is trained again (`RunDirectory.lacks_test_curve`), not skipped.
            train.pop("record_test_curve", None)
        return {
            "model": self.model,
            "model_options": {k: v for k, v in self.model_options.items() if k not in self.identity_exempt},
            "train": train,
            "split_hash": self.dataset["split_hash"],
            "features": self.dataset.get("features"),
            "protocol": self.protocol,
            "metric": self.metric,
            "lr": self.lr,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config_hash": self.config_hash, "group_hash": self.group_hash}
