"""Model registry: `@register_model` on a class, `create_model(name, ...)` to build one, `build_model` to
size one for a prepared dataset (the trainer and restored runs build every model through it).

Built-in models register when `hbench.models` is imported. Outside packages add models through the
entry-point group `hbench.models` (`name = "package.module:ModelClass"`); they are looked up lazily.
Both kinds are checked for the class attributes reports rely on (`family`, `proposed`), which
`model_traits` hands to reports without building a model.

A plugin that cannot be loaded (its module fails to import, it names no `Recommender`, or it declares no
traits) must not take the other models down with it: it is left out of `available_models` with one warning
line on stderr naming the entry point, its distribution and the cause, and only asking for that model by
name is an error. A plugin whose constructor raises is named in the error too (`PluginError`).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
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


class PluginError(RuntimeError):
    """A plugin model's own code failed (a bug in the plugin, not a user's mistake): the message names the
    model and the entry point and distribution it comes from, so the report goes to the right authors."""


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point of the `hbench.models` group that could not be loaded, and why."""

    model: str  # the entry point's name: the model name a user would ask for
    origin: str  # which entry point of which distribution, e.g. "entry point 'x = pkg.mod:X' of pkg 1.0"
    cause: str  # one line: the exception or the problem with the class

    def error(self) -> HBenchError:
        """What asking for this model by name raises."""
        return HBenchError(f"model {self.model!r} comes from a plugin that cannot be loaded ({self.origin}): "
                           f"{self.cause}; fix or uninstall that package")


def _origin(ep: EntryPoint) -> str:
    """The entry point and, where importlib knows it, the distribution that declares it."""
    where = f"entry point '{ep.name} = {ep.value}'"
    dist = getattr(ep, "dist", None)  # None for entry points not read from an installed distribution
    if dist is None:
        return where
    return f"{where} of {dist.name} {dist.version}"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@functools.cache
def _load_plugin(ep: EntryPoint) -> type[Recommender] | BrokenPlugin:
    """The model class entry point `ep` names, or why it cannot be used.

    Cached per entry point, the process-wide state of this module, kept on purpose (with `_warn_skipped`):
    Python caches a module that imported (`sys.modules`) but tries a failing import again every time, and
    `available_models` runs once per run directory a table reads. Keeping the outcome makes a broken
    plugin cost one import attempt and one warning line per process, not one per call. Tests that
    install a different fake plugin under the same entry point call `_load_plugin.cache_clear()`.
    """
    try:
        cls = ep.load()
    except Exception as error:  # noqa: BLE001 - any failure of a third party's import is the plugin's
        cause = _one_line(f"{type(error).__name__}: {error}")
    else:
        if not (isinstance(cls, type) and issubclass(cls, Recommender)):
            cause = f"{ep.value!r} is not a Recommender subclass"
        elif (problem := undeclared_traits(cls)) is not None:
            cause = f"its model class {problem}"
        else:
            return cls
    return BrokenPlugin(ep.name, _origin(ep), cause)


@functools.cache
def _warn_skipped(broken: BrokenPlugin) -> None:
    """One line on stderr, once per process (cached), for a plugin left out of the models.

    stderr rather than `warnings.warn`: one plain `warning:` line like every other hbench warning (Python's
    warnings add the source line), shown even where warnings are filtered."""
    print(f"warning: skipping model {broken.model!r} ({broken.origin}): {broken.cause}", file=sys.stderr)


def _scan_models(asked: str | None = None) -> tuple[dict[str, type[Recommender]], dict[str, BrokenPlugin]]:
    """The usable models by name (built-ins first, then plugins), and the plugins that failed to load.

    Each broken plugin is warned about, except `asked`: the model the caller is about to refuse by name
    (its error says the same, and one line is enough)."""
    # The built-ins are registered already: importing this module ran `hbench/models/__init__.py` first,
    # which imports every built-in model.
    models = dict(_BUILTIN)
    broken: dict[str, BrokenPlugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in models or ep.name in broken:  # a built-in (or an earlier plugin) keeps its name
            continue
        loaded = _load_plugin(ep)
        if isinstance(loaded, BrokenPlugin):
            broken[ep.name] = loaded
            if ep.name != asked:
                _warn_skipped(loaded)
        else:
            models[ep.name] = loaded
    return models, broken


def builtin_models() -> dict[str, type[Recommender]]:
    """The models hbench itself ships, by name (no plugin: what hbench's own documentation describes)."""
    return dict(_BUILTIN)


def available_models() -> dict[str, type[Recommender]]:
    """Built-in models plus those installed packages declare under the `hbench.models` entry points
    (a plugin that cannot be loaded is left out, with one warning line per process)."""
    return _scan_models()[0]


def model_traits() -> dict[str, ModelTraits]:
    """The declared traits of every available model, by name (what reports know about models)."""
    return {name: ModelTraits(cls.family, cls.proposed) for name, cls in available_models().items()}


def model_family(name: str, options: Mapping[str, Any], *,
                 models: Mapping[str, type[Recommender]] | None = None) -> GeometryFamily | None:
    """The geometry family of model `name` configured with `options` (a run's: HGCF's `--geometry` and
    HVACF's `--hyperbolic` switch it, so the class' `family` is only its default); None for an unknown model.
    Options this installation cannot parse (another hbench version's) give the class' declared family."""
    cls = (available_models() if models is None else models).get(name)
    if cls is None:
        return None
    try:
        return cls.family_for(parse_options(cls, options))
    except HBenchError:
        return cls.family


def get_model_class(name: str) -> type[Recommender]:
    """The class of model `name`; a user error when no model has that name or its plugin cannot be loaded."""
    models, broken = _scan_models(asked=name)
    if name in broken:
        raise broken[name].error()
    if name not in models:
        raise HBenchError(f"unknown model {name!r}; available: {', '.join(sorted(models))}")
    return models[name]


def _plugin_origin(cls: type[Recommender]) -> str | None:
    """The entry point (and distribution) a plugin model class was loaded from; None for a built-in."""
    if cls in _BUILTIN.values():
        return None
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if _load_plugin(ep) is cls:
            return _origin(ep)
    return None  # a class built directly, never registered: nobody else to name


def _construct(cls: type[Recommender], context: ModelContext, options: Any) -> Recommender:
    """`cls(context, options)`; a plugin whose constructor raises is named in the error (still exit 1: the
    bug is the plugin's), so that the user knows which package to report it to."""
    try:
        return cls(context, options)
    except HBenchError:
        raise
    except Exception as error:
        origin = _plugin_origin(cls)
        if origin is None:
            raise
        raise PluginError(f"model {cls.name!r} from {origin} raised {type(error).__name__} while being built: "
                          f"{_one_line(str(error))}") from error


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
    return _construct(cls, context, parse_options(cls, options or {}))


def build_model(cls: type[Recommender], options: Any, dataset: PreparedDataset, *, dim: int,
                generator: torch.Generator, item_features: torch.Tensor | None = None) -> Recommender:
    """A model of `cls` with parsed `options`, sized for `dataset` (its users, items, training data and
    cached training graph); `generator` seeds the initial parameters."""
    context = ModelContext(dataset.n_users, dataset.n_items, dim, dataset.train, generator,
                           item_features=item_features, graph=dataset.train_graph)
    return _construct(cls, context, options)


def model_defaults(name: str, options: Mapping[str, Any], *,
                   models: Mapping[str, type[Recommender]] | None = None) -> ModelDefaults | None:
    """What model `name` trains with by default given a run's `options` (None for an unknown model);
    `models`: `available_models()` read once by a caller that asks for many runs (a table's thousands)."""
    cls = (available_models() if models is None else models).get(name)
    if cls is None:
        return None
    try:  # the rate this configuration trains with by default (it may depend on an option)
        default_lr = cls.default_lr_for(parse_options(cls, options))
    except HBenchError:  # options of another hbench version: compare with the model's plain default
        default_lr = cls.default_lr
    return ModelDefaults({f.name: f.default for f in dataclasses.fields(cls.Options)}, default_lr,
                         cls.default_batch_size)


def non_default_settings(run: RecordedRun, *, models: Mapping[str, type[Recommender]] | None = None) -> list[str]:
    """`run_settings` of a recorded run against its model's defaults in this installation (the words of
    its table row, sweep summary line and plot legend); `models` as in `model_defaults`."""
    return run_settings(run, model_defaults(run.model, run.model_options, models=models))
