"""Spec files: TOML and YAML read alike, every mistake is one clear error, cells expand as counted by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from hbench.errors import HBenchError
from hbench.experiments import expand_cells, load_spec, parse_spec
from hbench.experiments.spec import Search, sample_search

TOML = """
name = "demo"
datasets = ["a", "b"]
seeds = 2
metric = "ndcg@10"
train = { epochs = 3, dim = 8 }

[[models]]
name = "hyperml"
options = { margin = 0.5 }
grid = { c = [0.5, 1.0, 2.0], gamma = [0.0, 0.2] }

[[models]]
name = "bpr"
grid = { lr = [0.01, 0.001] }
"""

YAML = """
name: demo
datasets: [a, b]
seeds: 2
metric: ndcg@10
train: {epochs: 3, dim: 8}
models:
  - name: hyperml
    options: {margin: 0.5}
    grid: {c: [0.5, 1.0, 2.0], gamma: [0.0, 0.2]}
  - name: bpr
    grid: {lr: [0.01, 0.001]}
"""


def test_toml_and_yaml_give_the_same_spec(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TOML)
    (tmp_path / "s.yaml").write_text(YAML)
    assert load_spec(tmp_path / "s.toml") == load_spec(tmp_path / "s.yaml")


def test_cells_are_the_product_counted_by_hand(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(TOML)
    cells = expand_cells(load_spec(tmp_path / "s.toml"))
    # 2 datasets × (hyperml 3 c × 2 γ + bpr 2 lr) × 2 seeds
    assert len(cells) == 2 * (3 * 2 + 2) * 2
    hyperml = [c for c in cells if c.model == "hyperml" and c.train["dataset"] == "a" and c.seed == 1]
    assert sorted((c.options["c"], c.options["gamma"]) for c in hyperml) == [
        (c, g) for c in (0.5, 1.0, 2.0) for g in (0.0, 0.2)]
    assert all(c.options["margin"] == 0.5 and c.train["epochs"] == 3 and c.train["metric"] == "ndcg@10" for c in hyperml)
    bpr = [c for c in cells if c.model == "bpr"]
    assert {c.train["lr"] for c in bpr} == {0.01, 0.001} and all("lr" not in c.options for c in bpr)


def test_values_take_their_declared_types_so_one_configuration_has_one_cell(tmp_path: Path) -> None:
    # TOML integers where floats are declared, and YAML 1.1 reading `1e-3` as a string: both must land
    # as the float the model and TrainConfig declare, or equal configurations would hash differently.
    (tmp_path / "ints.toml").write_text('datasets = ["a"]\nseeds = 1\ntrain = { lr = 1 }\n'
                                        '[[models]]\nname = "hyperml"\ngrid = { c = [2], gamma = [0] }\n')
    (tmp_path / "text.yaml").write_text("datasets: [a]\nseeds: 1\ntrain: {lr: 1e-3, ks: '5,10'}\n"
                                        "models:\n  - name: hyperml\n    grid: {c: [2.0], gamma: [0.0]}\n")
    (ints,) = expand_cells(load_spec(tmp_path / "ints.toml"))
    (text,) = expand_cells(load_spec(tmp_path / "text.yaml"))
    assert ints.options == {"c": 2.0, "gamma": 0.0} and all(type(v) is float for v in ints.options.values())
    assert type(ints.train["lr"]) is float and ints.train["lr"] == 1.0
    assert text.options == ints.options and text.train["lr"] == 0.001 and text.train["ks"] == (5, 10)
    assert ints.config().identity()["lr"] == 1.0


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"models": [{"name": "nonsense"}]}, "unknown model 'nonsense'"),
    ({"models": [{"name": "hyperml", "grid": {"c": []}}]}, "grid axis 'c' is empty"),
    ({"models": [{"name": "hyperml", "grid": {"curvature": [1]}}]}, "'curvature' is neither an option of hyperml"),
    ({"models": [{"name": "hyperml", "grid": {"c": ["big"]}}]}, "--c expects float, got 'big'"),
    ({"models": [{"name": "hyperml", "options": {"c": 1}, "grid": {"c": [1, 2]}}]}, "'c' is both fixed and swept"),
    ({"train": {"epoch": 3}}, "unknown training setting(s) epoch"),
    ({"train": {"epochs": 2.5}}, "train.epochs expects int, got 2.5"),
    ({"train": {"patience": True}}, "train.patience expects int, got True"),
    ({"models": [{"name": "bpr", "grid": {"dim": [8, "wide"]}}]}, "models[bpr].grid.dim expects int, got 'wide'"),
    ({"models": [{"name": "hyperml", "options": {"c": None}}]}, "--c expects float, got None"),
    ({"models": [{"name": "hyperml", "options": {"parametrization": "disk"}}]},
     "--parametrization expects ball|tangent, got 'disk'"),
    ({"seeds": "three"}, "seeds"),
    ({"seeds": [1, 1]}, "seeds repeat"),
    ({"seeds": [-1, 2]}, "seeds must not be negative"),
    ({"models": [{"name": "hyperml", "search": {"trials": 2, "space": {"c": {"choices": [1.0, "x"]}}}}]},
     "models[hyperml].search.space.c expects float, got 'x'"),
    ({"models": [{"name": "hyperml", "search": {"trials": 2, "space": {"epochs": {"low": 1, "high": 3}}}}]},
     "an integer setting; add `integer = true`"),
    ({"models": [{"name": "hyperml", "search": {"trials": 2, "space": {"parametrization": {"low": 0, "high": 1}}}}]},
     "a range needs a numeric setting"),
    ({"datasets": []}, "datasets: List should have at least 1 item"),
    ({"models": [{"name": "hyperml", "search": {"trials": 2, "space": {"c": {"low": 2, "high": 1}}}}]}, "low <= high"),
    ({"models": [{"name": "hyperml", "grid": {"gamma": [0.0, 0.2]},
                  "search": {"method": "tpe", "trials": 2, "space": {"c": {"low": 0.5, "high": 2}}}}]},
     "a TPE search cannot be combined with grid or variants"),
    ({"models": [{"name": "bpr", "grid": {"metric": ["mrr", "ndcg@10"]}}]}, "'metric' cannot be swept"),
])
def test_mistakes_are_one_clear_error(change: dict, message: str) -> None:
    data = {"datasets": ["a"], "seeds": 1, "models": [{"name": "bpr"}], **change}
    with pytest.raises(HBenchError) as error:
        parse_spec(data, "spec.toml")
    assert message in str(error.value) and str(error.value).startswith("spec.toml: ")
    assert "\n" not in str(error.value)


def test_several_mistakes_are_listed_on_one_line() -> None:
    with pytest.raises(HBenchError) as error:
        parse_spec({"datasets": [], "seeds": 0, "colour": "red", "shade": 1, "models": [{"name": "bpr"}]}, "s.toml")
    message = str(error.value)
    assert message.count("; ") == 2 and message.endswith("(and 1 more)") and "\n" not in message
    assert "datasets: List should have at least 1 item" in message and "seeds must be at least 1" in message


def test_files_that_are_not_specs_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("name = [")
    with pytest.raises(HBenchError, match="not valid TOML"):
        load_spec(tmp_path / "bad.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(HBenchError, match="a spec is a mapping"):
        load_spec(tmp_path / "list.yaml")
    with pytest.raises(HBenchError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_random_search_is_seeded_and_stays_in_its_space() -> None:
    search = Search.model_validate({"trials": 50, "seed": 3, "space": {
        "c": {"low": 0.1, "high": 10, "log": True}, "dim": {"low": 8, "high": 64, "integer": True},
        "parametrization": {"choices": ["ball", "tangent"]}}})
    trials = sample_search(search)
    assert trials == sample_search(search)  # the same plan on every rerun
    assert all(0.1 <= t["c"] <= 10 and 8 <= t["dim"] <= 64 and isinstance(t["dim"], int) for t in trials)
    assert {t["parametrization"] for t in trials} == {"ball", "tangent"}
    # log-uniform: about half the draws below the geometric midpoint 1
    assert 15 <= sum(t["c"] < 1 for t in trials) <= 35
    spec = parse_spec({"datasets": ["a"], "seeds": 2, "models": [{"name": "hyperml", "search": {
        "trials": 4, "space": {"c": {"low": 0.1, "high": 2}}}}]}, "s")
    cells = expand_cells(spec)
    assert len(cells) == 8 and {c.variant for c in cells} == {f"trial {i}" for i in range(4)}
