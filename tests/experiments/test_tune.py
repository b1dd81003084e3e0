"""`hbench tune`: the same search for every model, the validation winner over the seeds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hbench.api import tune
from hbench.errors import HBenchError
from hbench.experiments.tune import TUNE_LOG


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
