"""The shared training loop: run directories, reproducibility, early stopping, divergence, plugins."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest
import torch

from hbench.config import TrainConfig
from hbench.evaluation.metrics import summarise
from hbench.evaluation.protocols import evaluate
from hbench.models import ModelContext, create_model
from hbench.models.bpr import BPRMF
from hbench.runs import RunDirectory
from hbench.training.trainer import train


def _config(ds, **kw) -> TrainConfig:
    return TrainConfig(dataset=str(ds.path), **{"dim": 16, "epochs": 6, "batch_size": 256, "device": "cpu", **kw})


def test_run_directory_is_complete_and_checkpoint_reproduces_test_metrics(tiny_dataset, tmp_path: Path) -> None:
    result = train("bpr", _config(tiny_dataset), out=tmp_path)
    run = RunDirectory(result.path)
    assert result.status == "completed" and run.status() == "completed"
    config, env = run.read_config(), json.loads((run.path / "environment.json").read_text())
    assert config["dataset"]["split_hash"] == tiny_dataset.split_hash
    assert config["dataset"]["manifest_sha256"] == tiny_dataset.manifest_hash
    assert config["train"]["dataset"] == "tiny" and len(config["config_hash"]) == 64
    assert {"git_revision", "versions", "device"} <= set(env)
    assert env["versions"]["torch"] == version("torch") and env["device"] == "cpu"
    history = run.read_history()
    assert [h["epoch"] for h in history] == list(range(1, len(history) + 1))
    per_user = pd.read_parquet(run.path / "per_user.parquet")
    assert len(per_user) == result.metrics["n_test_users"] == tiny_dataset.test.users.size
    # Independent check: rebuild the model from the checkpoint and evaluate the test split again.
    model = create_model("bpr", ModelContext(tiny_dataset.n_users, tiny_dataset.n_items, 16, tiny_dataset.train,
                                             torch.Generator()))
    model.load_state_dict(run.load_checkpoint())
    again = summarise(evaluate(model.representations(), tiny_dataset, stage="test", protocol=config["protocol"]))
    assert again == pytest.approx(result.metrics["test"])


def test_same_seed_reproduces_and_other_seed_differs(tiny_dataset, tmp_path: Path) -> None:
    a = train("hyperml", _config(tiny_dataset, seed=3), out=tmp_path / "a").metrics["test"]
    b = train("hyperml", _config(tiny_dataset, seed=3), out=tmp_path / "b").metrics["test"]
    c = train("hyperml", _config(tiny_dataset, seed=4), out=tmp_path / "c").metrics["test"]
    assert a == b and a != c


def test_early_stopping_restores_the_best_validation_epoch(tiny_dataset, tmp_path: Path) -> None:
    result = train("cml", _config(tiny_dataset, epochs=30, eval_every=1, patience=2, lr=0.05), out=tmp_path)
    history = RunDirectory(result.path).read_history()
    values = [h["valid"][result.metrics["selection_metric"]] for h in history]
    best = max(range(len(values)), key=lambda i: (values[i], -i))
    assert result.metrics["best_epoch"] == history[best]["epoch"]
    assert result.metrics["valid"] == history[best]["valid"]
    assert len(history) < 30 and all(v <= values[best] for v in values[best + 1 :])


def test_finished_run_is_skipped_unless_forced(tiny_dataset, tmp_path: Path) -> None:
    first = train("pop", _config(tiny_dataset), out=tmp_path)
    assert not first.skipped
    assert train("pop", _config(tiny_dataset), out=tmp_path).skipped
    assert not train("pop", _config(tiny_dataset), out=tmp_path, force=True).skipped


def test_training_beats_popularity_on_hierarchical_data(tiny_dataset, tmp_path: Path) -> None:
    pop = train("pop", _config(tiny_dataset, protocol="loo"), out=tmp_path).metrics["test"]["ndcg@10"]
    bpr = train("bpr", _config(tiny_dataset, protocol="loo", epochs=30), out=tmp_path).metrics["test"]["ndcg@10"]
    assert bpr > pop + 0.05


@dataclass(frozen=True)
class _ExplodeOptions:
    after_steps: int = 2


class ExplodingModel(BPRMF):
    """A plugin model whose loss turns NaN after a few steps."""

    name = "explode"
    Options = _ExplodeOptions

    def __init__(self, context: ModelContext, options: _ExplodeOptions) -> None:
        from hbench.models.bpr import BPROptions

        super().__init__(context, BPROptions())
        self.options_explode = options
        self.steps = 0

    def loss(self, users, positives, negatives):
        terms = super().loss(users, positives, negatives)
        self.steps += 1
        if self.steps > self.options_explode.after_steps:
            terms.total = terms.total * float("nan")
        return terms


def test_a_validation_metric_that_is_never_a_number_ends_as_diverged(tiny_dataset, tmp_path: Path, monkeypatch) -> None:
    """NaN never beats the best so far, so no checkpoint is kept: the run must end diverged, not crash."""
    import hbench.training.trainer as trainer

    monkeypatch.setattr(trainer, "summarise", lambda per_user: {k: float("nan") for k in summarise(per_user)})
    result = train("bpr", _config(tiny_dataset, epochs=2), out=tmp_path)
    assert result.status == "diverged" and RunDirectory(result.path).status() == "diverged"
    assert result.metrics["message"] == "validation recall@20 was not a number at any of 2 epoch(s)"


def test_plugin_model_from_entry_point_and_divergence(tiny_dataset, tmp_path: Path, monkeypatch) -> None:
    import hbench.models.registry as registry

    class FakeEntryPoint:
        name, value = "explode", "tests.training.test_trainer:ExplodingModel"

        def load(self):
            return ExplodingModel

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "hbench.models" else [])
    result = train("explode", _config(tiny_dataset), out=tmp_path)
    assert result.status == "diverged" and "loss became nan" in result.metrics["message"]
    assert RunDirectory(result.path).status() == "diverged"
    assert "test" not in result.metrics


class _PoisonedBPR(BPRMF):
    """A plugin model whose loss stays finite while a parameter entry becomes infinite after a step.

    The parameter is one the loss never reads, so no later loss can report the divergence instead.
    """

    name = "poisoned"

    def __init__(self, context: ModelContext, options) -> None:
        super().__init__(context, options)
        self.unread = torch.nn.Parameter(torch.zeros(4))
        self.steps = 0

    def constrain_(self, rows=None) -> None:
        super().constrain_(rows)
        self.steps += 1
        if self.steps == 3:  # after the loss of step 3 was computed: the epoch's loss stays finite
            with torch.no_grad():
                self.unread[1] = float("inf")


def test_a_parameter_that_becomes_infinite_under_a_finite_loss_ends_as_diverged(tiny_dataset, tmp_path: Path,
                                                                                   monkeypatch) -> None:
    import hbench.models.registry as registry

    class FakeEntryPoint:
        name, value = "poisoned", "tests.training.test_trainer:_PoisonedBPR"

        def load(self):
            return _PoisonedBPR

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntryPoint()] if group == "hbench.models" else [])
    result = train("poisoned", _config(tiny_dataset, epochs=3), out=tmp_path)
    assert result.status == "diverged", result.metrics
    assert result.metrics["message"].startswith("parameters became non-finite at epoch ")


@pytest.mark.parametrize("poison", [float("inf"), float("-inf"), float("nan"), None, "both"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_finiteness_check_agrees_with_isfinite_entry_by_entry(poison, dtype) -> None:
    from hbench.training.trainer import _all_finite

    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        model = torch.nn.Module()
        model.a = torch.nn.Parameter(torch.randn(37, 5, generator=generator, dtype=dtype) * 10.0 ** (trial % 5))
        model.b = torch.nn.Parameter(torch.randn(11, generator=generator, dtype=dtype))
        target = model.a if trial % 2 else model.b
        flat = target.data.view(-1)
        at = int(torch.randint(flat.numel(), (2,), generator=generator)[0])
        if poison == "both":  # +inf and −inf in one table: their sum is NaN, not ±inf
            flat[at], flat[(at + 1) % flat.numel()] = float("inf"), float("-inf")
        elif poison is not None:
            flat[at] = poison
        expected = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        assert _all_finite(model) is expected


@pytest.mark.parametrize("model_name", ["bpr", "cml", "hyperml"])
def test_sparse_optimizer_moves_only_touched_rows_and_dense_moves_all(model_name: str, tiny_dataset) -> None:
    import numpy as np

    from hbench.training.trainer import make_optimizers

    def one_step(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = ModelContext(tiny_dataset.n_users, tiny_dataset.n_items, 8, tiny_dataset.train, torch.Generator().manual_seed(0))
        model = create_model(model_name, ctx)
        before = model.embedding_tables()[0].detach().clone()
        optimizers = make_optimizers(model, kind, lr=0.01)
        users = torch.tensor([0, 1, 2])
        terms = model.loss(users, torch.tensor([3, 4, 5]), torch.tensor([[6], [7], [8]]))
        terms.total.backward()
        for opt in optimizers:
            opt.step()
        model.constrain_()
        return before, model.embedding_tables()[0].detach()

    before, after = one_step("sparse")
    moved = np.flatnonzero((before != after).any(1).numpy())
    assert moved.tolist() == [0, 1, 2]
    before, after = one_step("dense")
    # Dense Adam's update is zero for rows with zero gradient too, but Riemannian steps and CML's
    # re-projection touch them; what matters is that sparse never moves untouched rows.
    assert (before[:3] != after[:3]).any(1).all()


def test_time_to_quality_is_training_time_until_95_percent_of_the_best() -> None:
    from hbench.training.trainer import time_to_quality

    history = [{"epoch": 1, "train_seconds": 2.0, "valid": {"ndcg@10": 0.10}},
               {"epoch": 2, "train_seconds": 3.0},  # not validated
               {"epoch": 3, "train_seconds": 4.0, "valid": {"ndcg@10": 0.19}},  # 0.19 ≥ 0.95 · 0.20
               {"epoch": 4, "train_seconds": 5.0, "valid": {"ndcg@10": 0.20}}]
    assert time_to_quality(history, "ndcg@10") == {"time_to_quality_seconds": 9.0, "epochs_to_quality": 3}
    assert time_to_quality(history[:2], "ndcg@10") == {"time_to_quality_seconds": 2.0, "epochs_to_quality": 1}
    assert time_to_quality([{"epoch": 1, "train_seconds": 1.0}], "ndcg@10")["time_to_quality_seconds"] is None


def test_runs_record_the_revision_of_the_code_the_process_imported(tiny_dataset, tmp_path: Path, monkeypatch) -> None:
    """A checkout that moves on while a sweep runs must not relabel the sweep's later runs: the revision is
    read when hbench is imported. Reference: git itself, asked before this test changes anything."""
    import subprocess

    import hbench.runs as runs

    here = Path(runs.__file__).resolve().parent
    head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True)
    imported = runs.git_revision()
    if head.returncode == 0:
        assert imported.removesuffix("-dirty") == head.stdout.strip()
    else:
        assert imported == "unknown"

    def moved_checkout(args, **kwargs):  # what git would answer after a checkout of another commit
        return subprocess.CompletedProcess(args, 0, stdout="0" * 40 + "\n", stderr="")

    monkeypatch.setattr(runs.subprocess, "run", moved_checkout)
    result = train("pop", _config(tiny_dataset), out=tmp_path)
    recorded = json.loads((result.path / "environment.json").read_text())["git_revision"]
    assert recorded == imported
