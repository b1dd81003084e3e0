"""Resuming an interrupted run ends exactly where an uninterrupted run with the same seed ends.

The reference is always a second, uninterrupted run of the same configuration: equal histories (loss of
every epoch, validation metrics), equal best checkpoints (tensor for tensor) and equal test metrics.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hbench.config import TrainConfig
from hbench.runs import RunDirectory
from hbench.training import trainer


def _config(ds, **kw) -> TrainConfig:
    base = {"dim": 16, "epochs": 12, "batch_size": 64, "patience": 100, "eval_every": 3, "seed": 3, "device": "cpu"}
    return TrainConfig(dataset=str(ds.path), **{**base, **kw})


def _assert_same_run(a: Path, b: Path) -> None:
    run_a, run_b = RunDirectory(a), RunDirectory(b)
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in h]  # noqa: E731
    assert strip(run_a.read_history()) == strip(run_b.read_history())
    ma, mb = run_a.read_metrics(), run_b.read_metrics()
    assert ma["status"] == mb["status"] == "completed"
    assert (ma["best_epoch"], ma["valid"], ma["test"]) == (mb["best_epoch"], mb["valid"], mb["test"])
    ca, cb = run_a.load_checkpoint(), run_b.load_checkpoint()
    assert ca.keys() == cb.keys() and all(torch.equal(ca[k], cb[k]) for k in ca)
    assert not (a / "resume.pt").exists() and not (b / "resume.pt").exists()


class _Crash(Exception):
    pass


def _crash_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Make the process 'die' right after the resume state of `epoch` is written."""
    original = RunDirectory.write_resume_state

    def write_then_crash(self, state):
        original(self, state)
        if state["epoch"] == epoch:
            raise _Crash

    monkeypatch.setattr(RunDirectory, "write_resume_state", write_then_crash)


@pytest.mark.parametrize(("model", "options"), [("hyperml", {}), ("bpr", {}), ("hvacf", {"neighbours": "4"})])
def test_crashed_run_resumes_to_the_uninterrupted_result(tiny_dataset, tmp_path, monkeypatch, model, options) -> None:
    features = torch.randn(tiny_dataset.n_items, 8, generator=torch.Generator().manual_seed(0))
    fixed = SimpleNamespace(encoder="fixed", key="test", features=lambda: features.numpy())
    monkeypatch.setattr(trainer, "_feature_artifact",
                        lambda cls, opts, dataset, encoder: fixed if cls.uses_features(opts) else None)
    config = _config(tiny_dataset)
    reference = trainer.train(model, config, options, out=tmp_path / "reference")

    with monkeypatch.context() as patch:
        _crash_after_epoch(patch, 5)
        with pytest.raises(_Crash):
            trainer.train(model, config, options, out=tmp_path / "interrupted")
    run_dir = trainer.plan_run(model, config, options, out=tmp_path / "interrupted").run_dir
    assert run_dir.status() is None and run_dir.resumable_epoch() == 5
    resumed = trainer.train(model, config, options, out=tmp_path / "interrupted")
    assert not resumed.skipped
    _assert_same_run(reference.path, resumed.path)
    env = (resumed.path / "environment.json").read_text()
    assert '"after_epoch": 5' in env


def test_a_resume_state_of_another_configuration_is_ignored(tiny_dataset, tmp_path, monkeypatch) -> None:
    config = _config(tiny_dataset, epochs=6)
    with monkeypatch.context() as patch:
        _crash_after_epoch(patch, 2)
        with pytest.raises(_Crash):
            trainer.train("bpr", config, out=tmp_path)
    planned = trainer.plan_run("bpr", config, out=tmp_path)
    assert planned.run_dir.load_resume_state(planned.run.config_hash) is not None
    assert planned.run_dir.load_resume_state("0" * 64) is None
    (planned.run_dir.path / "resume.pt").write_bytes(b"torn")
    assert planned.run_dir.load_resume_state(planned.run.config_hash) is None  # start over, no crash


def test_kill_9_mid_training_then_resume_equals_an_uninterrupted_run(tiny_dataset, tmp_path) -> None:
    """A real process, killed with SIGKILL while it trains, then the same command again."""
    args = ["hyperml", "--dataset", str(tiny_dataset.path), "--dim", "16", "--epochs", "30", "--batch-size", "64",
            "--patience", "1000", "--eval-every", "10", "--seed", "4", "--device", "cpu", "--quiet"]
    command = [sys.executable, "-m", "hbench", "train", *args]
    env = {**os.environ, "HBENCH_HOME": str(tmp_path / "home")}
    killed_out, reference_out = tmp_path / "killed", tmp_path / "reference"

    process = subprocess.Popen([*command, "--out", str(killed_out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    history = []
    while time.monotonic() < deadline and process.poll() is None:
        runs = list(killed_out.rglob("history.jsonl"))
        if runs and (killed_out.rglob("resume.pt")):
            history = RunDirectory(runs[0].parent).read_history()
            if len(history) >= 5:
                break
        time.sleep(0.02)
    assert process.poll() is None, f"training ended before it could be killed: {process.stderr.read().decode()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    run_dir = RunDirectory(next(killed_out.rglob("config.json")).parent)
    assert run_dir.status() is None and 5 <= (run_dir.resumable_epoch() or 0) < 30

    for out in (killed_out, reference_out):
        done = subprocess.run([*command, "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    _assert_same_run(run_dir.path, next(reference_out.rglob("config.json")).parent)
    assert "after_epoch" in (run_dir.path / "environment.json").read_text()


def test_a_dense_adam_state_saved_by_geoopt_continues_as_geoopt_would_in_torchs_adam() -> None:
    """Checkpoints from before dense parameters moved to torch's fused Adam hold geoopt's state (integer
    step). Loaded into torch's Adam, the next steps equal geoopt's own continuation (float64, to rounding),
    and the optimiser keeps the fused step it was built with."""
    import geoopt

    generator = torch.Generator().manual_seed(0)
    old = torch.nn.Parameter(torch.randn(5, 3, dtype=torch.float64, generator=generator))
    new = torch.nn.Parameter(old.detach().clone())
    geoopt_adam = geoopt.optim.RiemannianAdam([old], lr=0.01)
    torch_adam = torch.optim.Adam([new], lr=0.01, fused=True)

    def step(parameter: torch.nn.Parameter, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()
        (parameter ** 3).sum().backward()
        optimizer.step()

    for _ in range(3):
        step(old, geoopt_adam)
    new.data.copy_(old.data)
    saved = copy.deepcopy(geoopt_adam.state_dict())  # as a checkpoint holds it: no tensor shared with geoopt_adam
    trainer.load_optimizer_state(torch_adam, saved)
    assert torch_adam.param_groups[0]["fused"] is True
    for _ in range(4):
        step(old, geoopt_adam)
        step(new, torch_adam)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-12)
