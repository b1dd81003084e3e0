"""`train --record-test-curve`: test metrics at every validation, in their own file, read by nothing that selects.

The curve is a protocol measurement (`hbench table --protocol-gap`): a run trained with it must train, stop,
select and report exactly as without it, and sweeps, tune and default tables must not move when its numbers do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hbench.api import run_sweep, table, tune
from hbench.cli import main
from hbench.config import TrainConfig
from hbench.experiments import parse_spec
from hbench.runs import TEST_CURVE, RunDirectory
from hbench.training.trainer import train

_TIMING = {"train_seconds", "eval_seconds"}


def _config(ds, **kw) -> TrainConfig:
    # Validation every 2 epochs and a patience of 2: the run stops early, so stopping is part of what is compared.
    return TrainConfig(dataset=str(ds.path), **{"dim": 8, "epochs": 40, "eval_every": 2, "patience": 2,
                                                "batch_size": 256, "lr": 0.05, "device": "cpu", **kw})


def _untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k not in _TIMING} for h in history]


def _rewrite_curve(root: Path, value: float) -> int:
    """Every test_curve.jsonl below `root` rewritten with `value` for every metric (the epochs kept)."""
    curves = sorted(root.rglob(TEST_CURVE))
    for path in curves:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({k: (v if k == "epoch" else value) for k, v in r.items()}) + "\n"
                                for r in rows))
    return len(curves)


def test_the_flag_changes_no_training_selection_or_result(tiny_dataset, tmp_path) -> None:
    plain = train("bpr", _config(tiny_dataset), out=tmp_path / "plain")
    curved = train("bpr", _config(tiny_dataset, record_test_curve=True), out=tmp_path / "curved")
    a, b = RunDirectory(plain.path), RunDirectory(curved.path)
    # One configuration: the same run folder name (group hash), the same table row.
    assert plain.path.relative_to(tmp_path / "plain") == curved.path.relative_to(tmp_path / "curved")
    assert a.read_config()["group_hash"] == b.read_config()["group_hash"]
    assert b.read_config()["train"]["record_test_curve"] is True and "record_test_curve" not in a.read_config()["train"]
    history = a.read_history()
    assert history[-1]["epoch"] < 40  # it stopped early: stopping is compared too
    assert _untimed(history) == _untimed(b.read_history())
    ma, mb = a.read_metrics(), b.read_metrics()
    for key in ("best_epoch", "epochs_run", "valid", "test", "status"):
        assert ma[key] == mb[key], key
    ca, cb = a.load_checkpoint(), b.load_checkpoint()
    assert ca.keys() == cb.keys() and all(torch.equal(ca[k], cb[k]) for k in ca)
    # Its time is reported apart; the run without the flag has no such entry and no file.
    assert "test_curve_seconds" not in ma and mb["test_curve_seconds"] >= 0
    assert not (a.path / TEST_CURVE).exists()

    # One curve row per validation point; at the best epoch, the run's own test metrics (the same weights).
    curve = b.read_test_curve()
    assert [row["epoch"] for row in curve] == [h["epoch"] for h in history if "valid" in h]
    (at_best,) = [row for row in curve if row["epoch"] == mb["best_epoch"]]
    assert {k: v for k, v in at_best.items() if k != "epoch"} == pytest.approx(mb["test"], abs=1e-12)
    assert set(at_best) - {"epoch"} == set(mb["test"])


def test_a_finished_run_without_a_curve_is_trained_again_to_record_one(tiny_dataset, tmp_path) -> None:
    out = tmp_path / "runs"
    first = train("bpr", _config(tiny_dataset, epochs=4), out=out)
    again = train("bpr", _config(tiny_dataset, epochs=4, record_test_curve=True), out=out)
    assert again.path == first.path and not again.skipped and (again.path / TEST_CURVE).is_file()
    assert again.metrics["test"] == first.metrics["test"]
    # A run with the curve serves a request without one (the same run, one file more), and keeps its curve.
    assert train("bpr", _config(tiny_dataset, epochs=4), out=out).skipped
    assert (again.path / TEST_CURVE).is_file()


def test_the_cli_flag_records_the_curve(tiny_dataset, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["train", "bpr", "--dataset", str(tiny_dataset.path), "--dim", "8", "--epochs", "4", "--eval-every",
              "2", "--batch-size", "256", "--device", "cpu", "--out", str(tmp_path), "--record-test-curve", "--quiet"])
    assert done.value.code == 0
    (curve,) = tmp_path.rglob(TEST_CURVE)
    assert [json.loads(line)["epoch"] for line in curve.read_text().splitlines()] == [2, 4]


def _sweep_spec(dataset, **train_extra):
    return parse_spec({"name": "t", "datasets": [str(dataset.path)], "seeds": 1,
                       "train": {"dim": 8, "epochs": 4, "eval_every": 2, "batch_size": 256, **train_extra},
                       "models": [{"name": "bpr", "grid": {"lr": [0.002, 0.05]}}]}, "test")


def test_a_tampered_curve_moves_no_selection_and_no_default_table_cell(tiny_dataset, tmp_path) -> None:
    plain_out, curved_out = tmp_path / "plain", tmp_path / "curved"
    run_sweep(_sweep_spec(tiny_dataset), plain_out)
    run_sweep(_sweep_spec(tiny_dataset, record_test_curve=True), curved_out)
    selection = (curved_out / "selection.json").read_text()
    plain_selection = json.loads((plain_out / "selection.json").read_text())
    assert json.loads(selection)["selected_groups"] == plain_selection["selected_groups"]
    rendered = table(curved_out, "csv", significance=None)
    rendered_all = table(curved_out, "csv", significance=None, all_configs=True)

    # Curves that would pick the other configuration if anything read them: the losing lr's test curve
    # rewritten far above anything real, the winner's far below.
    chosen = set(json.loads(selection)["selected_groups"])
    for curve in curved_out.rglob(TEST_CURVE):
        won = RunDirectory(curve.parent).read_config()["group_hash"] in chosen
        _rewrite_curve(curve.parent, 0.0 if won else 1.0)
    assert run_sweep(_sweep_spec(tiny_dataset, record_test_curve=True), curved_out).ran == 0  # selects again
    assert (curved_out / "selection.json").read_text() == selection
    assert table(curved_out, "csv", significance=None) == rendered
    assert table(curved_out, "csv", significance=None, all_configs=True) == rendered_all


def test_tune_picks_the_same_winner_with_the_flag(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("optuna")
    train_settings = {"epochs": 2, "dim": 8, "batch_size": 256}
    plain = tune(str(tiny_dataset.path), ["bpr"], 3, [0], tmp_path / "plain", train=train_settings)
    curved = tune(str(tiny_dataset.path), ["bpr"], 3, [0], tmp_path / "curved",
                  train={**train_settings, "record_test_curve": True})
    assert plain.winners["bpr"].values == curved.winners["bpr"].values
    assert plain.winners["bpr"].valid == curved.winners["bpr"].valid
    assert len(list((tmp_path / "curved").rglob(TEST_CURVE))) == 4  # 3 trials + the winner's seed
    # Tampered curves: the tune resumes to the same winner.
    _rewrite_curve(tmp_path / "curved", 1.0)
    again = tune(str(tiny_dataset.path), ["bpr"], 3, [0], tmp_path / "curved",
                 train={**train_settings, "record_test_curve": True})
    assert again.winners["bpr"].values == curved.winners["bpr"].values


def test_a_run_that_records_the_curve_resumes_to_the_uninterrupted_curve(tiny_dataset, tmp_path, monkeypatch) -> None:
    """Killed after epoch 9's test point was written but before its resume state was: the resumed run
    continues from epoch 8, drops the orphan point, and ends with the uninterrupted run's curve and results."""
    from hbench.training import trainer
    from tests.training.test_resume import _assert_same_run, _Crash

    config = TrainConfig(dataset=str(tiny_dataset.path), dim=16, epochs=12, batch_size=64, patience=100,
                         eval_every=3, seed=3, device="cpu", record_test_curve=True)
    reference = trainer.train("bpr", config, out=tmp_path / "reference")
    original = RunDirectory.write_resume_state

    def crash_before_epoch_9(self, state):
        if state["epoch"] == 9:
            assert [p["epoch"] for p in self.read_test_curve()] == [3, 6, 9]  # the orphan point is on disk
            raise _Crash
        original(self, state)

    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "write_resume_state", crash_before_epoch_9)
        with pytest.raises(_Crash):
            trainer.train("bpr", config, out=tmp_path / "interrupted")
    resumed = trainer.train("bpr", config, out=tmp_path / "interrupted")
    assert not resumed.skipped
    _assert_same_run(reference.path, resumed.path)
    assert RunDirectory(resumed.path).read_test_curve() == RunDirectory(reference.path).read_test_curve()
    assert [p["epoch"] for p in RunDirectory(resumed.path).read_test_curve()] == [3, 6, 9, 12]
