"""`hbench tune`: the same search for every model, the validation winner over the seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hbench.api import tune
from hbench.errors import HBenchError
from hbench.experiments.tune import TUNE_LOG, model_budget_text
from hbench.models.registry import get_model_class


def _runs(root: Path) -> list[tuple[dict, dict]]:
    return [(json.loads(c.read_text()), json.loads((c.parent / "metrics.json").read_text()))
            for c in sorted(root.rglob("config.json")) if (c.parent / "metrics.json").is_file()]


def test_tune_runs_the_validation_winner_of_each_search_over_the_seeds(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("optuna")
    out = tmp_path / "tune"
    report = tune(str(tiny_dataset.path), ["bpr", "cml"], 3, [0, 1], out,
                  train={"epochs": 2, "dim": 8, "batch_size": 256})
    budget = json.loads((out / TUNE_LOG).read_text())
    assert budget["trials_per_model"] == 3 and budget["final_seeds"] == [0, 1]
    for model in ("bpr", "cml"):
        trials = [(c, m) for c, m in _runs(out / "search") if c["model"] == model]
        assert len(trials) == 3 and {c["train"]["seed"] for c, _ in trials} == {0}
        best_config, _ = max(trials, key=lambda cm: cm[1]["valid"][cm[1]["selection_metric"]])  # validation only
        finals = [(c, m) for c, m in _runs(out / "seeds") if c["model"] == model]
        assert sorted(c["train"]["seed"] for c, _ in finals) == [0, 1]
        for config, _ in finals:
            assert config["model_options"] == best_config["model_options"] and config["lr"] == best_config["lr"]
        # Seed 0 of the winner reproduces the search's run exactly.
        (seed0,) = [m for c, m in finals if c["train"]["seed"] == 0]
        (trial,) = [m for c, m in trials if c["group_hash"] == best_config["group_hash"]]
        assert seed0["test"] == trial["test"]
    assert {s.model for s in report.seeds.selections} == {"bpr", "cml"}


def test_a_model_without_a_search_space_is_refused(tiny_dataset, tmp_path) -> None:
    with pytest.raises(HBenchError, match="declares no search space"):
        tune(str(tiny_dataset.path), ["pop"], 2, [0], tmp_path / "t")


def test_a_rerun_into_a_tune_output_keeps_its_budget(tiny_dataset, tmp_path, monkeypatch) -> None:
    """Resuming or extending a tune (more seeds, another model) works; a rerun whose trials would differ
    (here the dimension, then the trial count) is refused before anything runs, and tune.json is left as it was."""
    pytest.importorskip("optuna")
    out, train = tmp_path / "tune", {"epochs": 2, "dim": 8, "batch_size": 256}
    tune(str(tiny_dataset.path), ["bpr"], 2, [0], out, train=train)
    recorded = (out / TUNE_LOG).read_text()
    runs_before = sorted(p.parent for p in out.rglob("config.json"))
    with pytest.raises(HBenchError, match=r"holds a tune with train = .*\"dim\": 8"):
        tune(str(tiny_dataset.path), ["bpr"], 2, [0], out, train={**train, "dim": 16})
    with pytest.raises(HBenchError, match="trials_per_model = 2, not 3"):
        tune(str(tiny_dataset.path), ["bpr"], 3, [0], out, train=train)
    assert (out / TUNE_LOG).read_text() == recorded
    assert sorted(p.parent for p in out.rglob("config.json")) == runs_before
    # Extending by a model, named alone, while bpr's declared space has changed since it was searched: bpr's
    # finished search resumes over its recorded space, and both stages go on listing it beside cml.
    monkeypatch.setattr(get_model_class("bpr"), "search_space", {"lr": {"low": 1e-4, "high": 1.0, "log": True}})
    report = tune(str(tiny_dataset.path), ["cml"], 2, [1], out, train=train)
    budget = json.loads((out / TUNE_LOG).read_text())
    assert set(budget["spaces"]) == {"bpr", "cml"} and budget["final_seeds"] == [0, 1]
    assert budget["spaces"]["bpr"] == json.loads(recorded)["spaces"]["bpr"]
    bpr_trials = [c for c, _ in _runs(out / "search") if c["model"] == "bpr"]
    assert len(bpr_trials) == 2  # the finished search was resumed, not repeated
    assert {s.model for s in report.search.selections} == {"bpr", "cml"}
    assert {s.model for s in report.seeds.selections} == {"bpr", "cml"}
    bpr_finals = [c for c, _ in _runs(out / "seeds") if c["model"] == "bpr"]
    assert sorted(c["train"]["seed"] for c in bpr_finals) == [0, 1]  # the recorded seed 0 and the new seed 1


def test_fixed_options_are_part_of_a_tunes_budget(tiny_dataset, tmp_path) -> None:
    """A fixed option must belong to every named model and lie outside their spaces; a rerun with other fixed
    options is refused, and an extension by another model keeps the recorded model's options."""
    pytest.importorskip("optuna")
    out, train = tmp_path / "tune", {"epochs": 1, "dim": 4, "batch_size": 256}
    with pytest.raises(HBenchError, match="--negative is not an option of bpr"):
        tune(str(tiny_dataset.path), ["cml", "bpr"], 1, [0], out, options={"negative": "closest"}, train=train)
    with pytest.raises(HBenchError, match="--margin is searched by cml's declared space"):
        tune(str(tiny_dataset.path), ["cml"], 1, [0], out, options={"margin": "0.5"}, train=train)
    assert not out.exists()  # refused before anything was written
    tune(str(tiny_dataset.path), ["cml"], 1, [0], out, options={"negative": "closest"}, train=train)
    recorded = (out / TUNE_LOG).read_text()
    with pytest.raises(HBenchError, match=r'fixed options \{"negative": "closest"\}, not \{\}'):
        tune(str(tiny_dataset.path), ["cml"], 1, [0], out, train=train)
    assert (out / TUNE_LOG).read_text() == recorded
    report = tune(str(tiny_dataset.path), ["bpr"], 1, [0], out, train=train)
    assert json.loads((out / TUNE_LOG).read_text())["options"] == {"cml": {"negative": "closest"}, "bpr": {}}
    cml_runs = [c for c, _ in _runs(out) if c["model"] == "cml"]
    assert len(cml_runs) == 2 and all(c["model_options"]["negative"] == "closest" for c in cml_runs)
    assert {s.model for s in report.seeds.selections} == {"bpr", "cml"}
    caption = model_budget_text(json.loads((out / TUNE_LOG).read_text()), "cml")
    assert caption.startswith('1 TPE trials over lr, margin with negative = "closest" fixed')
