"""Pruning of TPE trials: the median rule against Optuna's MedianPruner, the trainer's stop, exact resume."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from hbench.api import run_sweep
from hbench.config import TrainConfig
from hbench.experiments.spec import Pruning, parse_spec
from hbench.experiments.tpe import median_thresholds
from hbench.runs import RunDirectory
from hbench.training.trainer import train


def test_median_thresholds_prune_exactly_where_optunas_median_pruner_prunes() -> None:
    """Fixed thresholds, computed before a trial starts, give Optuna's decision at every validation."""
    optuna = pytest.importorskip("optuna")
    rng = np.random.default_rng(7)
    # Finished trials of different lengths (early stopping), a failed one and a pruned one (both ignored).
    curves = [list(np.round(rng.uniform(0.1, 0.5, size=n), 3)) for n in (6, 4, 6, 5, 3, 6)]
    history = [{"params": {}, "value": max(c), "curve": c} for c in curves]
    history += [{"params": {}, "value": None}, {"params": {}, "value": 0.9, "curve": [0.9, 0.9], "pruned": True}]
    pruning = Pruning(startup_trials=5, warmup_evaluations=2)
    thresholds = median_thresholds(history, pruning)
    assert thresholds is not None and len(thresholds) == 6 and thresholds[:2] == [0.0, 0.0]

    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2)
    for new_curve in (list(rng.uniform(0.1, 0.5, size=6)) for _ in range(30)):
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for c in curves:
            study.add_trial(optuna.trial.create_trial(value=max(c), intermediate_values=dict(enumerate(c))))
        trial = study.ask()
        best = -math.inf
        for step, value in enumerate(new_curve):
            trial.report(value, step)
            best = max(best, value)
            ours = best < thresholds[step]
            assert ours == trial.should_prune(), (step, new_curve, thresholds)
            if ours:
                break


def test_no_thresholds_before_enough_trials_finished() -> None:
    history = [{"params": {}, "value": 0.3, "curve": [0.2, 0.3]}] * 4
    assert median_thresholds(history, Pruning(startup_trials=5)) is None
    assert median_thresholds(history, Pruning(startup_trials=4, warmup_evaluations=1)) == [0.0, 0.3]


def test_a_run_below_its_threshold_stops_after_that_validation(tiny_dataset, tmp_path) -> None:
    base = dict(dataset=str(tiny_dataset.path), dim=8, epochs=6, batch_size=256, seed=0, eval_every=1, patience=6)
    full = train("bpr", TrainConfig(**base), out=tmp_path / "full")
    # The third validation must beat an impossible value: the run stops there, like an early stop.
    pruned = train("bpr", TrainConfig(**base, prune_below=(0.0, 0.0, 1.0)), out=tmp_path / "pruned")
    assert pruned.status == "completed" and pruned.metrics["pruned_at_epoch"] == 3
    assert pruned.metrics["epochs_run"] == 3 and "test" in pruned.metrics
    assert "pruned_at_epoch" not in full.metrics and full.metrics["epochs_run"] == 6
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in h]  # noqa: E731
    # Up to the stop, the pruned run is the unpruned one.
    assert strip(RunDirectory(pruned.path).read_history()) == strip(RunDirectory(full.path).read_history())[:3]
    # Without thresholds a run keeps the identity it had before pruning existed.
    assert "prune_below" not in TrainConfig(**base).identity()


def test_a_pruned_tpe_search_resumes_to_the_same_trials_and_decisions(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("optuna")

    def spec(trials: int):
        return parse_spec({"name": "p", "datasets": [str(tiny_dataset.path)], "seeds": 1,
                           "train": {"dim": 8, "epochs": 4, "batch_size": 256, "eval_every": 1, "patience": 4},
                           "models": [{"name": "bpr", "search": {
                               "method": "tpe", "trials": trials, "seed": 3,
                               "space": {"lr": {"low": 1e-4, "high": 0.3, "log": True}},
                               "prune": {"startup_trials": 2, "warmup_evaluations": 1}}}]}, "test")

    out = tmp_path / "search"
    run_sweep(spec(6), out)
    log_path = next(out.glob("tpe-*-bpr.json"))
    log = json.loads(log_path.read_text())["trials"]
    assert [t["prune_below"] is None for t in log] == [True, True, False, False, False, False]
    for trial in log:
        assert len(trial["curve"]) >= 2 and trial["value"] == pytest.approx(max(trial["curve"]))
    # Trial 2's thresholds are the median rule over trials 0 and 1 (the warm-up validation exempt).
    assert log[2]["prune_below"] == [0.0, *[float(np.median([log[0]["curve"][k], log[1]["curve"][k]]))
                                            for k in range(1, 4)]]
    # A pruned trial stopped at the first validation whose best so far fell below its threshold.
    for trial in log[2:]:
        best = np.maximum.accumulate(trial["curve"])
        below = [k for k, t in enumerate(trial["prune_below"]) if k < len(best) and best[k] < t]
        assert trial["pruned"] == bool(below)
        if below:
            assert len(trial["curve"]) == below[0] + 1
    assert any(t["pruned"] for t in log) and not all(t["pruned"] for t in log[2:])
    # The summary tells the trials apart by what was searched; the thresholds are the search's, not theirs.
    summary = (out / "sweep-summary.md").read_text()
    assert "prune_below" not in summary and summary.count("lr=") >= 6
    # Delete the last trial's record and run directory: the resumed search proposes and decides the same.
    (last,) = [c.parent for c in out.rglob("config.json") if json.loads(c.read_text())["lr"] == log[-1]["params"]["lr"]]
    shutil.rmtree(last)
    log_path.write_text(json.dumps({**json.loads(log_path.read_text()), "trials": log[:-1]}))
    run_sweep(spec(6), out)
    assert json.loads(log_path.read_text())["trials"] == log
