"""The contract every registered model keeps (built-ins and entry-point plugins alike).

Shapes of the representations, a finite loss with gradients that move parameters, a state-dict round trip,
determinism from the seed, a resumed run that ends exactly like an uninterrupted one, and the traits reports
read from the class (`family` matching the geometry the model scores with, `proposed` a bool), and the twins
models declare (`Recommender.twin`): the same model in the other geometry, with the same options.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from hbench.geometry import GEOMETRY_FAMILIES
from hbench.models import (
    ModelContext,
    Recommender,
    available_models,
    create_model,
    register_model,
)
from hbench.models.base import Twin
from hbench.models.registry import model_traits, parse_options, undeclared_traits
from hbench.training import trainer
from tests.training.test_resume import _assert_same_run, _Crash, _crash_after_epoch

MODELS = sorted(available_models())
SMALL_OPTIONS = {"hvacf": {"neighbours": "3"}, "vacf": {"neighbours": "3"}}


def _context(dataset, seed: int = 0) -> ModelContext:
    features = torch.randn(dataset.n_items, 6, generator=torch.Generator().manual_seed(5))
    return ModelContext(dataset.n_users, dataset.n_items, 8, dataset.train, torch.Generator().manual_seed(seed),
                        item_features=features, graph=dataset.train_graph)


def _reps(model) -> tuple[torch.Tensor, torch.Tensor]:
    reps = trainer.representations(model)
    return reps.users, reps.items


@pytest.mark.parametrize("name", MODELS)
def test_model_contract(name: str, tiny_dataset) -> None:
    model = create_model(name, _context(tiny_dataset), SMALL_OPTIONS.get(name))
    users, items = _reps(model)
    assert users.shape[0] == tiny_dataset.n_users and items.shape[0] == tiny_dataset.n_items
    assert users.shape[1] == items.shape[1] and torch.isfinite(users).all() and torch.isfinite(items).all()
    twin = create_model(name, _context(tiny_dataset), SMALL_OPTIONS.get(name))
    assert all(torch.equal(a, b) for a, b in zip(_reps(model), _reps(twin)))  # same seed, same model
    if not type(model).trainable:
        return
    optimizers = trainer.make_optimizers(model, "sparse", 0.05)
    batch = (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 2, 3]), torch.tensor([[5], [6], [7], [8]]))
    terms = model.loss(*batch)
    assert terms.total.dim() == 0 and torch.isfinite(terms.total)
    terms.total.backward()
    for optimizer in optimizers:
        optimizer.step()
    model.constrain_(trainer.touched_rows(model, optimizers))
    after = _reps(model)
    assert any(not torch.equal(a, b) for a, b in zip(after, _reps(twin)))  # the step changed the model
    restored = create_model(name, _context(tiny_dataset, seed=9), SMALL_OPTIONS.get(name))
    restored.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(_reps(restored), after))


@pytest.mark.parametrize("name", MODELS)
def test_model_declares_the_traits_reports_read(name: str, tiny_dataset) -> None:
    cls = available_models()[name]
    assert undeclared_traits(cls) is None
    traits = model_traits()[name]
    assert traits.family in GEOMETRY_FAMILIES and isinstance(traits.proposed, bool)
    model = create_model(name, _context(tiny_dataset), SMALL_OPTIONS.get(name))
    assert trainer.representations(model).geometry.family == traits.family  # the declaration tells the truth


def test_a_model_without_a_family_is_refused_at_registration() -> None:
    class Undeclared(Recommender):
        name = "undeclared"

    with pytest.raises(ValueError, match="must set `family`"):
        register_model(Undeclared)
    assert "undeclared" not in available_models()


def _fixed_features(tiny_dataset, monkeypatch) -> None:
    """Visual models read fixed random item features instead of extracting them (no encoder in these tests)."""
    features = torch.randn(tiny_dataset.n_items, 6, generator=torch.Generator().manual_seed(0))
    fixed = SimpleNamespace(encoder="fixed", key="test", features=lambda: features.numpy())
    monkeypatch.setattr(trainer, "_feature_artifact",
                        lambda cls, opts, dataset, encoder: fixed if cls.uses_features(opts) else None)


@pytest.mark.parametrize("name", [m for m in MODELS if available_models()[m].trainable])
def test_resumed_run_equals_uninterrupted(name: str, tiny_dataset, tmp_path, monkeypatch) -> None:
    _fixed_features(tiny_dataset, monkeypatch)
    from hbench.config import TrainConfig

    config = TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=3, batch_size=256, patience=10, seed=1,
                         device="cpu")
    options = SMALL_OPTIONS.get(name)
    reference = trainer.train(name, config, options, out=tmp_path / "reference")
    with monkeypatch.context() as patch:
        _crash_after_epoch(patch, 1)
        with pytest.raises(_Crash):
            trainer.train(name, config, options, out=tmp_path / "interrupted")
    resumed = trainer.train(name, config, options, out=tmp_path / "interrupted")
    _assert_same_run(reference.path, resumed.path)


TWINNED = [m for m in MODELS if available_models()[m].twin is not None]


def _twin_mismatches(cls: type[Recommender], twin_cls: type[Recommender], twin: Twin) -> list[str]:
    """How a model and its declared twin differ beyond their geometry options (empty: a true twin)."""
    mine = dataclasses.asdict(cls.Options())
    theirs = dataclasses.asdict(parse_options(twin_cls, twin.options))
    geometry = set(cls.geometry_options) | set(twin_cls.geometry_options)
    problems = [f"unknown geometry option {name!r}" for name in sorted(set(cls.geometry_options) - set(mine))]
    problems += [f"only one has --{name}" for name in sorted((set(mine) ^ set(theirs)) - geometry)]
    problems += [f"--{name}: {mine[name]!r} against {theirs[name]!r}" for name in sorted(set(mine) & set(theirs))
                 if mine[name] != theirs[name] and name not in geometry]
    return problems


def test_every_hyperbolic_seed_model_declares_a_twin() -> None:
    assert {"hyperml", "hgcf", "hvacf"} <= set(TWINNED)
    assert available_models()["hyperml"].twin == Twin(model="cml")
    assert available_models()["hgcf"].twin == Twin(model="hgcf", options={"geometry": "euclidean"})


@pytest.mark.parametrize("name", TWINNED)
def test_twin_differs_only_in_geometry(name: str, tiny_dataset) -> None:
    cls = available_models()[name]
    twin = cls.twin
    assert twin.model in available_models()  # the twin exists
    twin_cls = available_models()[twin.model]
    assert _twin_mismatches(cls, twin_cls, twin) == []
    families = []
    for model_name, options in ((name, {}), (twin.model, twin.options)):
        model_cls = available_models()[model_name]
        model = create_model(model_name, _context(tiny_dataset), {**SMALL_OPTIONS.get(model_name, {}), **options})
        families.append(model_cls.family_for(parse_options(model_cls, options)))
        assert trainer.representations(model).geometry.family == families[-1]  # a configured model's family
    assert families == ["hyperbolic", "euclidean"]


def test_the_twin_check_catches_an_option_that_differs() -> None:
    """A twin whose shared option has another default, or an option only one side has, is not a twin."""

    @dataclasses.dataclass(frozen=True)
    class Mine:
        c: float = 1.0
        margin: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class Theirs:
        margin: float = 0.5
        extra: int = 3

    class Hyperbolic(Recommender):
        name, family, Options, geometry_options = "h", "hyperbolic", Mine, ("c",)

    class Euclidean(Recommender):
        name, family, Options = "e", "euclidean", Theirs

    assert _twin_mismatches(Hyperbolic, Euclidean, Twin("e")) == ["only one has --extra", "--margin: 1.0 against 0.5"]
    assert _twin_mismatches(Hyperbolic, Euclidean, Twin("e", {"margin": 1.0})) == ["only one has --extra"]


@pytest.mark.parametrize("name", TWINNED)
def test_a_model_and_its_twin_train_an_epoch_with_finite_losses(name: str, tiny_dataset, tmp_path,
                                                                 monkeypatch) -> None:
    _fixed_features(tiny_dataset, monkeypatch)
    from hbench.config import TrainConfig

    config = TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=1, batch_size=256, patience=10, seed=1,
                         device="cpu")
    twin = available_models()[name].twin
    for label, model_name, options in (("model", name, {}), ("twin", twin.model, twin.options)):
        options: dict[str, Any] = {**SMALL_OPTIONS.get(model_name, {}), **options}
        run = trainer.train(model_name, config, options, out=tmp_path / label)
        losses = [row["loss"] for row in _history(run.path) if "loss" in row]
        assert losses and all(math.isfinite(loss) for loss in losses), (label, losses)


def _history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines()]
