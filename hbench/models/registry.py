"""Model registry: `@register_model` on a class, `create_model(name, ...)` to build one, `build_model` to
size one for a prepared dataset (the trainer and restored runs build every model through it).

Built-in models register when `hbench.models` is imported. Outside packages add models through the
entry-point group `hbench.models` (`name = "package.module:ModelClass"`); they are looked up lazily.
Both kinds are checked for the class attributes reports rely on (`family`, `proposed`), which
`model_traits` hands to reports without building a model.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import torch

from hbench.config import check_ranges, coerce_setting, type_name
from hbench.datasets.store import PreparedDataset
from hbench.errors import HBenchError
from hbench.geometry import GEOMETRY_FAMILIES, GeometryFamily
from hbench.models.base import ModelContext, Recommender
from hbench.runs import ModelDefaults, RecordedRun, run_settings

ENTRY_POINT_GROUP = "hbench.models"
_BUILTIN: dict[str, type[Recommender]] = {}


@dataclass(frozen=True)
class ModelTraits:
    """What a model class declares about itself for reports (see `Recommender`)."""

    family: GeometryFamily  # "euclidean" or "hyperbolic": the geometry of its representations
    proposed: bool  # a method under test rather than a baseline


def undeclared_traits(cls: type[Recommender]) -> str | None:
    """What is wrong with a model class' `family` and `proposed` declarations, or None when both are valid."""
    family = getattr(cls, "family", None)
    if family not in GEOMETRY_FAMILIES:
        return f"must set `family` to one of {', '.join(map(repr, GEOMETRY_FAMILIES))} (it is {family!r})"
    if not isinstance(cls.proposed, bool):
        return f"must set `proposed` to True or False (it is {cls.proposed!r})"
    return None


def register_model(cls: type[Recommender]) -> type[Recommender]:
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} must set a `name`")
    if (problem := undeclared_traits(cls)) is not None:
        raise ValueError(f"{cls.__qualname__} {problem}")
    if cls.name in _BUILTIN and _BUILTIN[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} is already registered")
    _BUILTIN[cls.name] = cls
    return cls


def available_models() -> dict[str, type[Recommender]]:
    """Built-in models plus those installed packages declare under the `hbench.models` entry points."""
    # The built-ins are registered already: importing this module ran `hbench/models/__init__.py` first,
    # which imports every built-in model.
    models = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in models:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Recommender)):
                raise HBenchError(f"entry point {ep.value!r} for model {ep.name!r} is not a Recommender subclass")
            if (problem := undeclared_traits(cls)) is not None:
                raise HBenchError(f"model {ep.name!r} ({ep.value}) {problem}")
            models[ep.name] = cls
    return models


def model_traits() -> dict[str, ModelTraits]:
    """The declared traits of every available model, by name (what reports know about models)."""
    return {name: ModelTraits(cls.family, cls.proposed) for name, cls in available_models().items()}


def get_model_class(name: str) -> type[Recommender]:
    models = available_models()
    if name not in models:
        raise HBenchError(f"unknown model {name!r}; available: {', '.join(sorted(models))}")
    return models[name]


def option_help(cls: type[Recommender]) -> list[tuple[str, str, Any, str]]:
    """(flag, type, default, help) for every option of a model."""
    rows = []
    for f in dataclasses.fields(cls.Options):
        hint = typing.get_type_hints(cls.Options)[f.name]
        bounds = f.metadata.get("range")
        kind = type_name(hint) + (f", {bounds}" if bounds is not None else "")
        rows.append((f"--{f.name.replace('_', '-')}", kind, f.default, f.metadata.get("help", "")))
    return rows


def parse_options(cls: type[Recommender], raw: Mapping[str, Any]) -> Any:
    """Build a model's Options from strings or values keyed by option name (dashes or underscores)."""
    hints = typing.get_type_hints(cls.Options)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.lstrip("-").replace("-", "_")
        if name not in hints:
            known = ", ".join(f"--{n.replace('_', '-')}" for n in hints) or "none"
            raise HBenchError(f"model {cls.name!r} has no option --{name.replace('_', '-')} (its options: {known})")
        values[name] = coerce_setting(value, hints[name], f"--{name.replace('_', '-')}")
    options = cls.Options(**values)
    check_ranges(options)  # the one check of every option's declared range
    return options


def create_model(name: str, context: ModelContext, options: Mapping[str, Any] | None = None) -> Recommender:
    cls = get_model_class(name)
    return cls(context, parse_options(cls, options or {}))


def build_model(cls: type[Recommender], options: Any, dataset: PreparedDataset, *, dim: int,
                generator: torch.Generator, item_features: torch.Tensor | None = None) -> Recommender:
    """A model of `cls` with parsed `options`, sized for `dataset` (its users, items, training data and
    cached training graph); `generator` seeds the initial parameters."""
    context = ModelContext(dataset.n_users, dataset.n_items, dim, dataset.train, generator,
                           item_features=item_features, graph=dataset.train_graph)
    return cls(context, options)


def model_defaults(name: str, options: Mapping[str, Any]) -> ModelDefaults | None:
    """What model `name` trains with by default given a run's `options` (None for an unknown model)."""
    cls = available_models().get(name)
    if cls is None:
        return None
    try:  # the rate this configuration trains with by default (it may depend on an option)
        default_lr = cls.default_lr_for(parse_options(cls, options))
    except HBenchError:  # options of another hbench version: compare with the model's plain default
        default_lr = cls.default_lr
    return ModelDefaults({f.name: f.default for f in dataclasses.fields(cls.Options)}, default_lr,
                         cls.default_batch_size)


def non_default_settings(run: RecordedRun) -> list[str]:
    """`run_settings` of a recorded run against its model's defaults in this installation (the words of
    its table row, sweep summary line and plot legend)."""
    return run_settings(run, model_defaults(run.model, run.model_options))
