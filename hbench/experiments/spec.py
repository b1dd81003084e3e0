"""Declarative experiment specs: what a sweep trains, validated before anything runs.

A spec (TOML or YAML) names datasets, seeds, shared training settings, and per model its fixed options,
grid axes (every combination), named variants (ablations) and/or a random search space:

    name = "sports"
    datasets = ["amazon-sports"]
    protocol = "loo"
    seeds = 3                          # or [0, 1, 2]
    metric = "ndcg@10"                 # validation metric that selects configurations
    train = { epochs = 30, patience = 3 }
    budget = { max_hours = 2.0 }

    [[models]]
    name = "hyperml"
    grid = { c = [0.5, 1, 2], gamma = [0, 0.2] }

    [[models]]
    name = "cml"

Grid and search axes may be model options (`hbench models NAME`) or training settings (`dim`, `lr`, …).
Unknown keys, wrong types, unknown models or options and empty grids are errors naming the offending key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hbench.config import TrainConfig, coerce_fields, coerce_setting
from hbench.errors import HBenchError
from hbench.models.registry import get_model_class, parse_options
from hbench.paths import check_slug

# Settings a spec may fix or sweep; dataset and seed are the spec's own axes, device a property of a machine.
# Selection compares configurations by one validation metric on one protocol's candidates; sweeping
# either would rank numbers that are not comparable.
_NOT_SWEPT = ("metric", "protocol")

# A spec error is one line: the first few problems pydantic found, then a count of the rest.
_ERRORS_SHOWN = 3

TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("dataset", "seed", "device"))
# A TPE trial's pruning thresholds belong to its search, not to its configuration: they do not tell
# configurations apart in summaries, and the winner runs its seeds without them.
SEARCH_ONLY_KEYS = frozenset({"prune_below"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Axis(_Strict):
    """One dimension of a random search: a range (`low`, `high`, optionally `log` / `integer`) or `choices`."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Axis:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
        elif self.low is None or self.high is None or not self.low <= self.high:
            raise ValueError("a range needs low <= high")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


class Pruning(_Strict):
    """Optuna's median rule (`MedianPruner`) for a TPE search, with every threshold fixed before a trial starts.

    Once `startup_trials` trials have run to their end (not pruned), a new trial stops after its k-th
    validation (k > `warmup_evaluations`) when its best validation value so far is below the median of those
    trials' k-th validation values (mean over a trial's seeds). The thresholds depend only on trials that
    finished before, so an interrupted search resumes to the same decisions.
    """

    startup_trials: int = Field(default=5, ge=1)
    warmup_evaluations: int = Field(default=2, ge=0)


class Search(_Strict):
    """`random`: `trials` points drawn up front from a seeded generator. `tpe`: Optuna's Tree-structured
    Parzen Estimator proposes each trial from the finished ones (objective: mean validation metric over
    the seeds); needs the `tpe` extra. `prune` (TPE only): stop hopeless trials early (`Pruning`)."""

    method: Literal["random", "tpe"] = "random"
    trials: int = Field(gt=0)
    seed: int = 0
    space: dict[str, Axis] = Field(min_length=1)
    prune: Pruning | None = None

    @model_validator(mode="after")
    def _prune_needs_tpe(self) -> Search:
        if self.prune is not None and self.method != "tpe":
            raise ValueError("`prune` needs method = \"tpe\" (random trials are planned up front)")
        return self


class ModelEntry(_Strict):
    name: str
    options: dict[str, Any] = {}
    train: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    variants: dict[str, dict[str, Any]] = {}
    search: Search | None = None

    @field_validator("grid")
    @classmethod
    def _non_empty_axes(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid axis {key!r} is empty")
        return grid

    @property
    def is_tpe(self) -> bool:
        """Its trials are proposed while the sweep runs (hbench.experiments.tpe), not planned up front."""
        return self.search is not None and self.search.method == "tpe"

    @model_validator(mode="after")
    def _tpe_sweeps_alone(self) -> ModelEntry:
        # TPE proposes one point at a time from the finished ones; a grid or variants beside it would
        # need a study per combination, so they are refused rather than silently dropped.
        if self.is_tpe and (self.grid or self.variants):
            raise ValueError(f"{self.name}: a TPE search cannot be combined with grid or variants; "
                             "give those values as `choices` axes of its space, or use method = \"random\"")
        return self


class Budget(_Strict):
    max_cells: int | None = Field(default=None, gt=0)
    max_hours: float | None = Field(default=None, gt=0)


class SweepSpec(_Strict):
    name: str = "sweep"
    datasets: list[str] = Field(min_length=1)
    protocol: str | None = None
    seeds: list[int] = Field(min_length=1)
    metric: str | None = None
    train: dict[str, Any] = {}
    models: list[ModelEntry] = Field(min_length=1)
    budget: Budget = Budget()
    select: bool = True  # False: every configuration is a result of its own (ablations)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str) -> str:
        # The name becomes the sweep's directory under the results root: never a path.
        return check_slug(name, "sweep name")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("seeds must be at least 1")
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError("seeds repeat")
        if min(seeds) < 0:
            raise ValueError("seeds must not be negative")  # numpy's SeedSequence takes none
        return seeds

    @model_validator(mode="after")
    def _known_names(self) -> SweepSpec:
        check_spec_names(self)
        return self


def check_spec_names(spec: SweepSpec) -> None:
    """Models exist; option and training keys are known; fixed and swept keys do not overlap; values parse."""
    _check_train_keys(spec.train, "train")
    train_hints = typing.get_type_hints(TrainConfig)
    for entry in spec.models:
        cls = get_model_class(entry.name)
        option_names = {f.name for f in dataclasses.fields(cls.Options)}
        where = f"models[{entry.name}]"
        _check_train_keys(entry.train, f"{where}.train")
        parse_options(cls, entry.options)
        swept = dict(entry.grid)
        if entry.search is not None:
            swept.update({key: None for key in entry.search.space})
        for key in swept:
            if key in _NOT_SWEPT:
                raise ValueError(f"{where}: {key!r} cannot be swept: it decides how configurations are compared, "
                                 "so it is one value per model (set it in `train` or at the top of the spec)")
            if key not in option_names and key not in TRAIN_KEYS:
                raise ValueError(f"{where}: {key!r} is neither an option of {entry.name} nor a training setting")
            if key in entry.options or key in entry.train:
                raise ValueError(f"{where}: {key!r} is both fixed and swept")
        for key, values in entry.grid.items():
            for value in values:
                _check_value(cls, key, value, f"{where}.grid.{key}")
        if entry.search is not None:
            option_hints = typing.get_type_hints(cls.Options)
            for key, axis in entry.search.space.items():
                _check_axis(cls, key, axis, option_hints.get(key, train_hints.get(key)), f"{where}.search.space.{key}")
        for variant, options in entry.variants.items():
            unknown = set(options) - option_names
            if unknown:
                raise ValueError(f"{where}.variants.{variant}: unknown option(s) {', '.join(sorted(unknown))}")
            parse_options(cls, options)


def _check_value(cls: Any, key: str, value: Any, where: str) -> None:
    """One swept value is valid for its model option (type and range, by the model's Options) or training
    setting (type)."""
    if key in TRAIN_KEYS:
        coerce_setting(value, typing.get_type_hints(TrainConfig)[key], where)
    else:
        parse_options(cls, {key: value})


def _check_axis(cls: Any, key: str, axis: Axis, hint: Any, where: str) -> None:
    """Every value a search axis can take fits the setting's declared type."""
    if axis.choices is not None:
        for choice in axis.choices:
            coerce_setting(choice, hint, where)  # the type, named by where it sits in the spec
            _check_value(cls, key, choice, where)  # and the option's own range
        return
    numeric = [a for a in (typing.get_args(hint) or (hint,)) if a is not type(None)]
    if numeric not in ([int], [float]):
        raise ValueError(f"{where}: a range needs a numeric setting; give `choices` instead")
    if numeric == [int] and not axis.integer:
        raise ValueError(f"{where}: an integer setting; add `integer = true` to the range")


def _check_train_keys(train: dict[str, Any], where: str) -> None:
    unknown = set(train) - set(TRAIN_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown training setting(s) {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(TRAIN_KEYS)})")
    coerce_fields(TrainConfig, train, f"{where}.")


def parse_spec(data: dict[str, Any], source: str) -> SweepSpec:
    """Validate a spec given as a mapping; errors become one HBenchError naming the key and the problem."""
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for problem in error.errors()[:_ERRORS_SHOWN]:
            where = ".".join(str(p) for p in problem["loc"])
            problems.append(f"{where + ': ' if where else ''}{problem['msg'].removeprefix('Value error, ')}")
        more = f" (and {error.error_count() - _ERRORS_SHOWN} more)" if error.error_count() > _ERRORS_SHOWN else ""
        raise HBenchError(f"{source}: {'; '.join(problems)}{more}") from None
    except HBenchError as error:
        raise HBenchError(f"{source}: {error}") from None


def load_spec(path: Path, overrides: dict[str, Any] | None = None) -> SweepSpec:
    """Read a TOML (.toml) or YAML (.yaml/.yml) spec file; `overrides` replace top-level keys (e.g. seeds)."""
    if not path.is_file():
        raise HBenchError(f"spec file {path} does not exist")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise HBenchError(f"{path}: a spec file is UTF-8 text, but byte {error.start} is not ({error.reason})") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise HBenchError(f"spec file {path} must end in .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, RecursionError) as error:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise HBenchError(f"{path}: not valid {path.suffix[1:].upper()}: {first}") from None
    if not isinstance(data, dict):
        raise HBenchError(f"{path}: a spec is a mapping of keys (name, datasets, seeds, models, ...)")
    data.setdefault("name", path.stem)
    return parse_spec({**data, **(overrides or {})}, str(path))


def sample_search(search: Search) -> list[dict[str, Any]]:
    """`trials` configurations drawn from the space with a seeded generator: the same plan on every rerun."""
    rng = np.random.default_rng(search.seed)
    trials = []
    for _ in range(search.trials):
        point: dict[str, Any] = {}
        for key, axis in sorted(search.space.items()):
            if axis.choices is not None:
                point[key] = axis.choices[int(rng.integers(len(axis.choices)))]
                continue
            assert axis.low is not None and axis.high is not None
            if axis.log:
                value = math.exp(rng.uniform(math.log(axis.low), math.log(axis.high)))
            else:
                value = float(rng.uniform(axis.low, axis.high))
            point[key] = int(round(value)) if axis.integer else float(f"{value:.6g}")
        trials.append(point)
    return trials
