"""Sweeps on a real (tiny) prepared dataset: run, skip what finished, resume, select on validation only,
the same numbers from every executor, failures recorded without stopping the sweep, ablations."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from hbench.api import run_sweep
from hbench.cli import main
from hbench.config import TrainConfig
from hbench.errors import HBenchError
from hbench.experiments import ExecutorOptions, describe_plan, parse_spec, plan_sweep
from hbench.runs import RunDirectory
from hbench.training import trainer


def _spec(dataset, **extra):
    data = {"name": "t", "datasets": [str(dataset.path)], "seeds": 2, "train": {"dim": 8, "epochs": 3, "batch_size": 256},
            "models": [{"name": "hyperml", "grid": {"c": [0.5, 2.0]}}, {"name": "bpr"}], **extra}
    return parse_spec(data, "test")


def _metrics(out: Path) -> dict[tuple, dict]:
    """Validation and test metrics of every finished run, keyed by (model, options, seed)."""
    found = {}
    for metrics in out.rglob("metrics.json"):
        run = RunDirectory(metrics.parent)
        config = run.read_config()
        key = (config["model"], json.dumps(config["model_options"], sort_keys=True), config["train"]["seed"])
        m = run.read_metrics()
        found[key] = {"valid": m["valid"], "test": m["test"], "best_epoch": m["best_epoch"]}
    return found


def test_sweep_runs_every_cell_once_and_selects_on_validation(tiny_dataset, tmp_path) -> None:
    spec = _spec(tiny_dataset)
    out = tmp_path / "sweep"
    report = run_sweep(spec, out)
    assert report.ran == 6 and report.failed == 0 and report.skipped == 0
    cells = pd.read_csv(out / "sweep-summary.csv")
    assert len(cells) == 6 and set(cells["status"]) == {"completed"}
    # Paths are relative to the sweep directory, wherever the sweep ran from.
    assert all(not Path(p).is_absolute() and (out / p / "metrics.json").is_file() for p in cells["path"])

    # Selection by hand: the hyperml configuration with the higher mean validation metric over its 2 seeds.
    by_c: dict[float, list[float]] = {}
    for metrics in out.rglob("metrics.json"):
        config = json.loads((metrics.parent / "config.json").read_text())
        if config["model"] == "hyperml":
            valid = json.loads(metrics.read_text())["valid"][config["metric"]]
            by_c.setdefault(config["model_options"]["c"], []).append(valid)
    best_c = max(by_c, key=lambda c: sum(by_c[c]) / 2)
    chosen = next(s for s in report.selections if s.model == "hyperml")
    assert f"c={best_c:g}" in chosen.settings or (best_c == 1.0 and "c=" not in chosen.settings)
    assert chosen.valid_mean == pytest.approx(sum(by_c[best_c]) / 2)
    assert f"highest mean validation {chosen.metric} over 2 seeds" in chosen.reason
    selection = json.loads((out / "selection.json").read_text())
    assert len(selection["selected_groups"]) == 2  # one hyperml configuration and bpr
    assert "✓" in (out / "sweep-summary.md").read_text()

    # `hbench table` on the sweep shows the selected configurations; --all-configs every one.
    from hbench.reports.collect import collect_runs

    assert collect_runs(out, selected_only=True)["group_hash"].nunique() == 2
    assert collect_runs(out)["group_hash"].nunique() == 3

    # Rerun: nothing runs again. Remove one finished cell's result: exactly that cell runs, to the same numbers.
    before = _metrics(out)
    assert run_sweep(spec, out).ran == 0
    victim = next(out.rglob("metrics.json"))
    victim.unlink()
    plan = plan_sweep(spec, out)
    assert plan.count("finished") == 5 and plan.count("new") == 1
    again = run_sweep(spec, out)
    assert again.ran == 1 and _metrics(out) == before


def test_dry_run_prints_the_plan_and_an_estimate(tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(f"datasets: ['{tiny_dataset.path}']\nseeds: 1\ntrain: {{dim: 8, epochs: 2}}\n"
                         "models:\n  - name: bpr\n  - name: hyperml\n    grid: {gamma: [0, 0.2]}\n")
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(spec_file), "--out", str(out), "--dry-run"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "3 cells" in text and "to run 3" in text and "unknown" in text
    assert not out.exists() or not any(out.rglob("metrics.json"))  # a dry run trains nothing
    with pytest.raises(SystemExit):
        main(["sweep", str(spec_file), "--out", str(out), "--quiet"])
    capsys.readouterr()
    (next(out.rglob("metrics.json"))).unlink()
    with pytest.raises(SystemExit):
        main(["sweep", str(spec_file), "--out", str(out), "--dry-run"])
    text = capsys.readouterr().out
    assert "finished 2" in text and "to run 1" in text and "min sequentially" in text
    with pytest.raises(SystemExit):  # more seeds for the same spec: only the new seeds are to run
        main(["sweep", str(spec_file), "--out", str(out), "--dry-run", "--seeds", "3"])
    text = capsys.readouterr().out
    assert "9 cells" in text and "finished 2" in text and "to run 7" in text


def test_flag_form_builds_the_same_grid(tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "flags"
    with pytest.raises(SystemExit) as done:
        main(["sweep", "hyperml", "--dataset", str(tiny_dataset.path), "--c", "0.5,2", "--gamma", "0", "--seeds", "2",
              "--dim", "8", "--epochs", "2", "--out", str(out), "--quiet"])
    assert done.value.code == 0
    configs = [json.loads(p.read_text()) for p in out.rglob("config.json")]
    assert sorted((c["model_options"]["c"], c["model_options"]["gamma"], c["train"]["seed"]) for c in configs) == [
        (0.5, 0.0, 0), (0.5, 0.0, 1), (2.0, 0.0, 0), (2.0, 0.0, 1)]
    assert all(c["train"]["epochs"] == 2 and c["train"]["dim"] == 8 for c in configs)
    assert "# Sweep" in capsys.readouterr().out
    # `--c 2` here names the run that `hbench train hyperml --c 2.0 --gamma 0 --dim 8 --epochs 2` would: a
    # float option given as an integer must not give the same configuration a second hash.
    planned = trainer.plan_run("hyperml", TrainConfig(dataset=str(tiny_dataset.path), dim=8, epochs=2, seed=1),
                               {"c": "2.0", "gamma": "0.0"}, out=out, dataset=tiny_dataset)
    assert planned.run_dir.status() == "completed"


@pytest.mark.parametrize(("flags", "message"), [
    (["--c", ""], "--c has an empty value"),
    (["--c", "0.5,big"], "--c expects float, got 'big'"),
    (["--epochs", "ten"], "epochs expects int, got 'ten'"),
    (["--seeds", "two"], "--seeds expects a count"),
    (["--seeds=-1,2"], "seeds must not be negative"),
    (["--device", "bogus"], "unknown device 'bogus'"),
    (["--c", "0,1"], "--c must be positive, got 0.0"),
    (["--device", "cuda:7"], "cuda:7 requested but"),
])
def test_flag_form_mistakes_are_one_line_and_run_nothing(tiny_dataset, tmp_path, capsys, flags, message) -> None:
    out = tmp_path / "flags"
    with pytest.raises(SystemExit) as done:
        main(["sweep", "hyperml", "--dataset", str(tiny_dataset.path), *flags, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_cell_budget_stops_the_sweep_and_the_summary_shows_what_is_left(tiny_dataset, tmp_path) -> None:
    spec = _spec(tiny_dataset, budget={"max_cells": 1}, models=[{"name": "hyperml", "grid": {"c": [0.5, 2.0]}}])
    out = tmp_path / "sweep"
    first = run_sweep(spec, out)
    assert first.ran == 1 and first.stopped_by_budget
    summary = (out / "sweep-summary.md").read_text()
    # configurations that have not run yet sit in the same table, under the protocol they will be run with
    sections = [line for line in summary.splitlines() if line.startswith("## ") and "Selected" not in line]
    assert len(sections) == 1 and sections[0].endswith(f"— {tiny_dataset.default_protocol}")
    assert "| hyperml   | c=2.0           | 0/2 " in summary  # the value as the table's row label writes it
    assert "provisional: no configuration has finished every seed yet" in summary
    assert "budget max_cells = 1: this invocation runs 1 of them" in describe_plan(plan_sweep(spec, out))
    second = run_sweep(spec, out)
    assert second.ran == 1 and second.skipped == 1 and second.stopped_by_budget
    rest = run_sweep(parse_spec({**spec.model_dump(), "budget": {}}, "test"), out)
    assert rest.ran == 2 and rest.skipped == 2 and not rest.stopped_by_budget
    assert "provisional" not in (out / "sweep-summary.md").read_text()


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tiny_dataset, tmp_path, capsys, monkeypatch) -> None:
    from hbench.models.bpr import BPRMF

    def broken_loss(self, *batch):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")  # what a run may meet

    monkeypatch.setattr(BPRMF, "loss", broken_loss)
    spec = _spec(tiny_dataset, seeds=1, models=[{"name": "hyperml"}, {"name": "bpr"}])
    report = run_sweep(spec, tmp_path / "sweep")
    assert report.ran == 2 and report.failed == 1
    cells = pd.read_csv(tmp_path / "sweep" / "sweep-summary.csv")
    assert sorted(cells["status"]) == ["completed", "failed"]
    assert "illegal memory access" in cells.loc[cells["status"] == "failed", "message"].iloc[0]
    assert [s.model for s in report.selections] == ["hyperml"]
    # from the CLI the sweep ends with exit code 3 after writing its summary
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(f'datasets = ["{tiny_dataset.path}"]\nseeds = 1\ntrain = {{ dim = 8, epochs = 2 }}\n'
                         '[[models]]\nname = "bpr"\n')
    with pytest.raises(SystemExit) as done:
        main(["sweep", str(spec_file), "--out", str(tmp_path / "cli"), "--quiet"])
    assert done.value.code == 3 and "failed" in capsys.readouterr().err


def test_worker_processes_give_the_sequential_numbers(tiny_dataset, tmp_path) -> None:
    spec = _spec(tiny_dataset)
    run_sweep(spec, tmp_path / "sequential")
    report = run_sweep(spec, tmp_path / "processes", executor=ExecutorOptions(executor="processes", jobs=2))
    assert report.ran == 6 and report.failed == 0
    assert _metrics(tmp_path / "processes") == _metrics(tmp_path / "sequential")


def test_a_worker_killed_mid_cell_fails_that_cell_only_and_a_rerun_resumes_it(tiny_dataset, tmp_path) -> None:
    """kill -9 of a worker process (what the OOM killer does) breaks Python's process pool; the sweep
    must record the cell it was running, go on with a fresh pool, and resume the cell on a rerun."""
    import multiprocessing
    import signal
    import threading
    import time

    spec = _spec(tiny_dataset, seeds=2, train={"dim": 8, "epochs": 40, "batch_size": 64},
                 models=[{"name": "hyperml"}])
    out = tmp_path / "killed"

    def kill_the_worker_after_its_first_epoch() -> None:
        deadline = time.monotonic() + 300
        while not list(out.rglob("resume.pt")) and time.monotonic() < deadline:
            time.sleep(0.05)
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker_after_its_first_epoch, daemon=True)
    killer.start()
    report = run_sweep(spec, out, executor=ExecutorOptions(executor="processes", jobs=1))
    killer.join()
    assert report.ran == 2 and report.failed == 1
    cells = pd.read_csv(out / "sweep-summary.csv").set_index("seed")
    assert cells.loc[0, "status"] == "failed" and "worker process died" in cells.loc[0, "message"]
    assert cells.loc[1, "status"] == "completed"  # the fresh pool ran the rest of the queue

    plan = plan_sweep(spec, out)
    assert [(c.cell.seed, c.state) for c in plan.cells] == [(0, "resumable"), (1, "finished")]
    rerun = run_sweep(spec, out)
    assert rerun.ran == 1 and rerun.failed == 0 and rerun.skipped == 1
    run_sweep(spec, tmp_path / "uninterrupted")
    assert _metrics(out) == _metrics(tmp_path / "uninterrupted")


def test_shipped_cells_send_their_resume_state_back_and_resume_from_it(tiny_dataset, tmp_path, monkeypatch) -> None:
    """Without shared storage (--ship-results) a cell that fails mid-training returns its last resume
    state; the next sweep ships it to the worker, which resumes instead of starting over."""
    spec = _spec(tiny_dataset, seeds=1, train={"dim": 8, "epochs": 6, "batch_size": 64}, models=[{"name": "hyperml"}])
    ship = ExecutorOptions(ship=True)
    out = tmp_path / "shipped"
    original = RunDirectory.write_resume_state

    def write_then_crash(self, state):
        original(self, state)
        if state["epoch"] == 3:
            raise RuntimeError("worker lost")

    with monkeypatch.context() as patch:
        patch.setattr(RunDirectory, "write_resume_state", write_then_crash)
        assert run_sweep(spec, out, executor=ship).failed == 1
    (cell,) = plan_sweep(spec, out).cells
    assert (cell.state, cell.resumable_epoch) == ("resumable", 3)
    assert run_sweep(spec, out, executor=ship).failed == 0
    environment = json.loads((cell.run_dir.path / "environment.json").read_text())
    assert [r["after_epoch"] for r in environment["resumed"]] == [3]
    assert not (cell.run_dir.path / "resume.pt").exists()
    run_sweep(spec, tmp_path / "uninterrupted")
    assert _metrics(out) == _metrics(tmp_path / "uninterrupted")


@pytest.mark.slow
def test_ray_executor_gives_the_sequential_numbers(tiny_dataset, tmp_path) -> None:
    ray = pytest.importorskip("ray")
    spec = _spec(tiny_dataset)
    run_sweep(spec, tmp_path / "sequential")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        shared = run_sweep(spec, tmp_path / "ray", executor=ExecutorOptions(executor="ray", gpus_per_cell=0))
        shipped = run_sweep(spec, tmp_path / "shipped", executor=ExecutorOptions(executor="ray", ship=True,
                                                                                gpus_per_cell=0))
    finally:
        ray.shutdown()
    assert shared.ran == shipped.ran == 6 and shared.failed == shipped.failed == 0
    assert _metrics(tmp_path / "ray") == _metrics(tmp_path / "sequential") == _metrics(tmp_path / "shipped")
    # shipped runs arrive complete: per-user metrics and the best checkpoint, as the worker wrote them
    for run in (tmp_path / "shipped").rglob("metrics.json"):
        assert (run.parent / "per_user.parquet").is_file() and (run.parent / "checkpoint.pt").is_file()


def test_ablate_runs_every_variant_without_selection(tiny_dataset, tmp_path, capsys) -> None:
    out = tmp_path / "ablate"
    with pytest.raises(SystemExit) as done:
        main(["ablate", "hyperml", "--dataset", str(tiny_dataset.path), "--seeds", "1", "--dim", "8", "--epochs", "2",
              "--out", str(out), "--quiet"])
    assert done.value.code == 0
    configs = [json.loads(p.read_text())["model_options"] for p in out.rglob("config.json")]
    assert sorted((c["gamma"], c["parametrization"]) for c in configs) == [(0.0, "tangent"), (0.2, "ball"), (0.2, "tangent")]
    text = capsys.readouterr().out
    assert "no distortion term" in text and "✓" not in text and "no selection" in text
    assert len(json.loads((out / "selection.json").read_text())["selected_groups"]) == 3


def test_hvacf_ablation_preset_switches_one_part_off_per_variant(tiny_dataset, tmp_path, monkeypatch) -> None:
    from hbench.experiments import ablation_spec

    features = torch.randn(tiny_dataset.n_items, 8, generator=torch.Generator().manual_seed(0))
    fixed = SimpleNamespace(encoder="fixed", key="test", features=lambda: features.numpy())
    monkeypatch.setattr(trainer, "_feature_artifact",
                        lambda cls, opts, dataset, encoder: fixed if cls.uses_features(opts) else None)
    spec = ablation_spec("hvacf", [str(tiny_dataset.path)], [0], {"dim": 8, "epochs": 2, "batch_size": 256})
    report = run_sweep(spec, tmp_path / "ablate")
    assert report.ran == 6 and report.failed == 0 and not report.selections
    parts = {}
    for history in (tmp_path / "ablate").rglob("history.jsonl"):
        config = json.loads((history.parent / "config.json").read_text())
        first = json.loads(history.read_text().splitlines()[0])
        parts[json.dumps({k: config["model_options"][k] for k in ("gamma", "lambda_adj", "attention", "visual", "hyperbolic")})] = set(first)
    loss_parts = {k: v & {"hyperbolic", "euclidean", "adjustment"} for k, v in parts.items()}
    assert sorted(map(sorted, loss_parts.values())) == sorted([
        ["adjustment", "euclidean", "hyperbolic"],  # full
        ["adjustment", "hyperbolic"],  # γ = 0
        ["euclidean", "hyperbolic"],  # λ_adj = 0
        ["adjustment", "euclidean", "hyperbolic"],  # uniform attention
        ["adjustment", "euclidean", "hyperbolic"],  # no visual features
        ["euclidean"],  # Euclidean only
    ])


def test_tpe_search_proposes_from_finished_trials_and_resumes_the_same_trials(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("optuna")
    from hbench.experiments.tpe import propose

    space = {"c": {"low": 0.2, "high": 3.0, "log": True}, "gamma": {"choices": [0.0, 0.2]}}
    spec = _spec(tiny_dataset, seeds=1, models=[{"name": "hyperml", "search": {"method": "tpe", "trials": 3,
                                                                               "seed": 5, "space": space}}])
    out = tmp_path / "tpe"
    report = run_sweep(spec, out)
    assert report.ran == 3 and report.failed == 0
    log = json.loads(next(out.glob("tpe-*-hyperml.json")).read_text())["trials"]
    assert len(log) == 3 and all(t["value"] is not None for t in log)
    assert all(0.2 <= t["params"]["c"] <= 3.0 and t["params"]["gamma"] in (0.0, 0.2) for t in log)
    # the objective is the trial's mean validation metric, read back from its run directory
    for trial in log:
        run = next(p.parent for p in out.rglob("config.json")
                   if json.loads(p.read_text())["model_options"]["c"] == trial["params"]["c"])
        metrics = json.loads((run / "metrics.json").read_text())
        assert trial["value"] == pytest.approx(metrics["valid"][metrics["selection_metric"]])
    # each proposal is a function of the history and the trial index: replaying it gives the same trials
    from hbench.experiments.spec import Axis

    axes = {k: Axis.model_validate(v) for k, v in space.items()}
    for index in range(3):
        assert propose(log[:index], axes, 5 + index) == log[index]["params"]
    # rerun: nothing runs again; summaries list the trials
    assert run_sweep(spec, out).ran == 0
    assert "tpe trial 2" in (out / "sweep-summary.md").read_text()
    # an interrupted search resumes the recorded trial instead of asking for a new one
    victim = next(p for p in out.rglob("metrics.json")
                  if json.loads((p.parent / "config.json").read_text())["model_options"]["c"] == log[1]["params"]["c"])
    victim.unlink()
    log_path = next(out.glob("tpe-*-hyperml.json"))
    log_path.write_text(json.dumps({**json.loads(log_path.read_text()), "trials": [log[0], {"params": log[1]["params"]}]}))
    again = run_sweep(spec, out)
    # trial 1 runs again with its recorded parameters; trial 2 is proposed anew from the same history and
    # index, so it is the same configuration and its finished cell is reused
    assert again.ran == 1 and again.skipped == 2
    assert json.loads(log_path.read_text())["trials"] == log
    # trials proposed from another space cannot seed this one
    moved = _spec(tiny_dataset, seeds=1, models=[{"name": "hyperml", "search": {
        "method": "tpe", "trials": 4, "seed": 5, "space": {**space, "c": {"low": 3.0, "high": 4.0}}}}])
    with pytest.raises(HBenchError, match="holds the trials of a different search space or seed"):
        run_sweep(moved, out)


def test_a_cell_budget_also_bounds_tpe_trials(tiny_dataset, tmp_path) -> None:
    pytest.importorskip("optuna")
    spec = _spec(tiny_dataset, seeds=1, budget={"max_cells": 1}, models=[
        {"name": "hyperml", "search": {"method": "tpe", "trials": 3, "space": {"c": {"low": 0.5, "high": 2.0}}}}])
    out = tmp_path / "tpe"
    runs = [run_sweep(spec, out) for _ in range(4)]
    assert [(r.ran, r.stopped_by_budget) for r in runs] == [(1, True), (1, True), (1, False), (0, False)]
    assert len(list(out.rglob("metrics.json"))) == 3


def test_a_missing_optuna_is_reported_before_any_cell_runs(tiny_dataset, tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "optuna", None)  # what `import optuna` meets when it is not installed
    spec = _spec(tiny_dataset, seeds=1, models=[
        {"name": "bpr"}, {"name": "hyperml", "search": {"method": "tpe", "trials": 2, "space": {"c": {"low": 0.5, "high": 2.0}}}}])
    with pytest.raises(HBenchError, match="a TPE search needs Optuna"):
        run_sweep(spec, tmp_path / "tpe")
    assert not (tmp_path / "tpe").exists()


def test_a_selection_tie_is_reported_as_one() -> None:
    from hbench.experiments.selection import _selection

    frame = pd.DataFrame([
        {"dataset": "d", "protocol": "loo", "model": "hyperml", "group_hash": g, "variant": "", "swept": f"c={c}",
         "metric": "ndcg@10", "valid_mean": 0.25, "valid_std": 0.01, "completed": 3, "seeds": 3}
        for g, c in (("g1", 0.5), ("g2", 1.0))])
    selection = _selection(frame.iloc[0], frame, frame)
    assert selection.settings == "c=0.5"
    assert "runner-up c=1.0 at 0.2500 (a tie, broken by the order of the spec)" in selection.reason

